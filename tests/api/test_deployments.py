"""Template deployments through the official SDK (azure-mgmt-resource-deployments) against the
session server: the seed's story as ARM tells it.

A deployment whose container group cannot pull its image ends ``Failed`` with
``DeploymentFailed`` and the group's ``InaccessibleImage`` (byte-exact, with moorage's classified
cause in ``additionalInfo``) in ``details``; its operations name the failed resource with
``statusCode: BadRequest``. The fix — a user-assigned identity with AcrPull, granted in the same
template, and the registry's trusted-services bypass — deploys and runs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.resource.deployments import DeploymentsMgmtClient

from moorage.instances.access import DIAGNOSIS_TYPE
from tests.api.conftest import RawArm
from tests.api.registry_http import Principal, assign_role, create_principal, delete_principal
from tests.api.registry_support import TestRegistry as Registry
from tests.api.registry_support import (
    admin_password,
    cert_dir,
    create_registry,
    skopeo,
    unique_name,
    update_registry,
)
from tests.api.test_container_groups import runs_containers
from tests.conftest import sdk_kwargs
from tests.images import busybox_image, write_layout
from tests.server import RunningServer

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ROLE_DEFINITIONS = "'Microsoft.Authorization/roleDefinitions'"
GROUPS = "'Microsoft.ContainerInstance/containerGroups'"
FAILED_MESSAGE = (
    "At least one resource deployment operation failed. Please list deployment operations for "
    "details. Please see https://aka.ms/arm-deployment-operations for usage details."
)
IDLE = "trap 'exit 0' TERM; echo deployed by a template; sleep 3600 & wait"


@dataclass(frozen=True)
class Setup:
    group: str
    registry: Registry
    puller: Principal  # a service principal with AcrPull on the registry

    @property
    def image(self) -> str:
        return f"{self.registry.login_server}/app:v1"


@pytest.fixture(scope="module")
def dc(server: RunningServer, credential: ClientSecretCredential) -> Iterator[DeploymentsMgmtClient]:
    with DeploymentsMgmtClient(credential, server.subscription_id, **sdk_kwargs(server)) as client:
        yield client


@pytest.fixture(scope="module")
def setup(server: RunningServer, raw: RawArm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    name = f"rg-dep-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{name}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    registry = create_registry(raw, name, unique_name("dep"), adminUserEnabled=True)
    where = tmp_path_factory.mktemp("dep")
    layout = write_layout(where / "app", "v1", busybox_image({"www/index.html": b"hi\n"}))
    result = skopeo(
        "copy",
        "--dest-cert-dir",
        str(cert_dir(server.ca_path, where / "certs")),
        "--dest-creds",
        f"{registry.name}:{admin_password(raw, registry)}",
        f"oci:{layout}:v1",
        f"docker://{registry.login_server}/app:v1",
    )
    assert result.returncode == 0, result.stderr
    sp = create_principal(raw, "dep-puller")
    assign_role(raw, registry.id, "AcrPull", sp.object_id)
    yield Setup(name, registry, sp)
    delete_principal(raw, sp)
    raw.request("DELETE", rg_path)


def deploy(dc: DeploymentsMgmtClient, group: str, name: str, template: dict[str, Any], **params: Any) -> Any:
    body = {
        "properties": {
            "mode": "Incremental",
            "template": template,
            "parameters": {k: {"value": v} for k, v in params.items()},
        }
    }
    return dc.deployments.begin_create_or_update(group, name, body).result()


def template(resources: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    return {"$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": resources, **sections}


def container_group(
    name: str, image: str, credential: dict[str, Any], identity: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "type": "Microsoft.ContainerInstance/containerGroups",
        "apiVersion": "2023-05-01",
        "name": name,
        "location": "[resourceGroup().location]",
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Always",
            "imageRegistryCredentials": [credential],
            "containers": [
                {
                    "name": "main",
                    "properties": {
                        "image": image,
                        "command": ["sh", "-c", IDLE],
                        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                    },
                }
            ],
        },
        **extra,
    }
    if identity is not None:
        resource["identity"] = identity
    return resource


def sp_credential(setup: Setup) -> dict[str, Any]:
    return {
        "server": setup.registry.login_server,
        "username": "[parameters('appId')]",
        "password": "[parameters('secret')]",
    }


SP_PARAMETERS = {
    "image": {"type": "string"},
    "appId": {"type": "string"},
    "secret": {"type": "securestring"},
}


def test_wrong_password_fails_the_deployment_with_the_groups_error(
    dc: DeploymentsMgmtClient, setup: Setup
) -> None:
    doc = template(
        [container_group("cg-wrong", "[parameters('image')]", sp_credential(setup))], parameters=SP_PARAMETERS
    )
    with pytest.raises(HttpResponseError) as info:
        deploy(
            dc, setup.group, "dep-wrong", doc, image=setup.image, appId=setup.puller.app_id, secret="not-it"
        )
    error = info.value.error
    assert error is not None
    assert error.code == "DeploymentFailed"
    assert error.message == FAILED_MESSAGE
    assert [d.code for d in error.details] == ["InaccessibleImage"]
    assert error.details[0].message == (
        f"The image '{setup.image}' in container group 'cg-wrong' is not accessible. Please check the image "
        "and registry credential."
    )
    # The SDK does not model nested additionalInfo; the operation status body carries it.
    detail = info.value.response.json()["error"]["details"][0]
    infos = [i for i in detail["additionalInfo"] if i["type"] == DIAGNOSIS_TYPE]
    assert infos
    assert infos[0]["info"]["cause"] == "CredentialsRejected"
    # The deployment is recorded Failed, with the same error.
    shown = dc.deployments.get(setup.group, "dep-wrong")
    assert shown.properties.provisioning_state == "Failed"
    assert shown.properties.error.code == "DeploymentFailed"
    # Its operations name the resource and carry the provider's own error.
    ops = list(dc.deployment_operations.list(setup.group, "dep-wrong"))
    failed = [o for o in ops if o.properties.provisioning_state == "Failed"]
    assert len(failed) == 1
    props = failed[0].properties
    assert props.provisioning_operation == "Create"
    assert props.status_code == "BadRequest"
    assert props.status_message.error.code == "InaccessibleImage"
    assert props.target_resource.resource_type == "Microsoft.ContainerInstance/containerGroups"
    assert props.target_resource.resource_name == "cg-wrong"
    assert props.target_resource.id.endswith(
        "/providers/Microsoft.ContainerInstance/containerGroups/cg-wrong"
    )
    # The secure parameter is echoed without its value.
    assert shown.properties.parameters["secret"] == {"type": "SecureString"}
    assert "not-it" not in json.dumps(shown.as_dict())


@runs_containers
def test_managed_identity_with_acr_pull_and_the_bypass_deploys(
    dc: DeploymentsMgmtClient, raw: RawArm, setup: Setup
) -> None:
    """The seed's fix in one template: a user-assigned identity, its AcrPull assignment on the
    registry, and a container group pulling with it through the firewall's trusted-services
    bypass; the outputs read the identity's principalId with reference()."""
    update_registry(
        raw,
        setup.registry,
        networkRuleSet={"defaultAction": "Deny", "ipRules": []},
        networkRuleBypassOptions="AzureServices",
    )
    try:
        # Expressions without their brackets, to nest them.
        uami = "resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'dep-puller')"
        registry = f"resourceId('Microsoft.ContainerRegistry/registries', '{setup.registry.name}')"
        assignment_name = f"guid({registry}, 'dep-puller', 'AcrPull')"
        assignment = (
            f"extensionResourceId({registry}, 'Microsoft.Authorization/roleAssignments', {assignment_name})"
        )
        doc = template(
            [
                {
                    "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                    "apiVersion": "2023-01-31",
                    "name": "dep-puller",
                    "location": "[resourceGroup().location]",
                },
                {
                    "type": "Microsoft.Authorization/roleAssignments",
                    "apiVersion": "2022-04-01",
                    "name": f"[{assignment_name}]",
                    "scope": f"[concat('Microsoft.ContainerRegistry/registries/', '{setup.registry.name}')]",
                    "dependsOn": [f"[{uami}]"],
                    "properties": {
                        "roleDefinitionId": f"[subscriptionResourceId({ROLE_DEFINITIONS}, '{ACR_PULL}')]",
                        "principalId": f"[reference({uami}).principalId]",
                        "principalType": "ServicePrincipal",
                    },
                },
                container_group(
                    "cg-fixed",
                    "[parameters('image')]",
                    {"server": setup.registry.login_server, "identity": f"[{uami}]"},
                    identity={"type": "UserAssigned", "userAssignedIdentities": {f"[{uami}]": {}}},
                    dependsOn=[f"[{assignment}]"],
                ),
            ],
            parameters={"image": {"type": "string"}},
            outputs={
                "principalId": {"type": "string", "value": f"[reference({uami}).principalId]"},
                "state": {
                    "type": "string",
                    "value": f"[reference(resourceId({GROUPS}, 'cg-fixed')).provisioningState]",
                },
            },
        )
        result = deploy(dc, setup.group, "dep-fixed", doc, image=setup.image)
        assert result.properties.provisioning_state == "Succeeded"
        outputs = result.properties.outputs
        assert outputs["state"]["value"] == "Succeeded"
        principal = raw.request(
            "GET",
            f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{setup.group}/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/dep-puller",
            api_version="2023-01-31",
        ).json()["properties"]["principalId"]
        assert outputs["principalId"]["value"] == principal
        ids = {r.id.lower() for r in result.properties.output_resources}
        assert any(i.endswith("/containergroups/cg-fixed") for i in ids)
        ops = list(dc.deployment_operations.list(setup.group, "dep-fixed"))
        assert len(ops) == 3
        assert len(list(dc.deployment_operations.list(setup.group, "dep-fixed", top=1))) == 1
        assert {o.properties.provisioning_state for o in ops} == {"Succeeded"}
    finally:
        update_registry(raw, setup.registry, networkRuleSet={"defaultAction": "Allow", "ipRules": []})


def test_invalid_template_is_refused_and_nothing_is_recorded(dc: DeploymentsMgmtClient, setup: Setup) -> None:
    doc = template(
        [
            {
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "apiVersion": "2023-01-31",
                "name": "[concat('x', parameters('missing'))]",
                "location": "westus",
            }
        ]
    )
    with pytest.raises(HttpResponseError) as info:
        deploy(dc, setup.group, "dep-invalid", doc)
    assert info.value.status_code == 400
    assert info.value.error is not None
    assert info.value.error.code == "InvalidTemplate"
    with pytest.raises(ResourceNotFoundError):
        dc.deployments.get(setup.group, "dep-invalid")


def test_dependency_cycle_is_invalid_template(dc: DeploymentsMgmtClient, setup: Setup) -> None:
    def identity(name: str, other: str) -> dict[str, Any]:
        return {
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "apiVersion": "2023-01-31",
            "name": name,
            "location": "westus",
            "dependsOn": [other],
        }

    with pytest.raises(HttpResponseError) as info:
        deploy(dc, setup.group, "dep-cycle", template([identity("a1", "b1"), identity("b1", "a1")]))
    assert info.value.error is not None
    assert info.value.error.code == "InvalidTemplate"
    assert "a1" in info.value.error.message
    assert "b1" in info.value.error.message


def test_validate_export_and_delete(dc: DeploymentsMgmtClient, setup: Setup) -> None:
    doc = template(
        [
            {
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "apiVersion": "2023-01-31",
                "name": "[format('id-{0}', copyIndex())]",
                "location": "[resourceGroup().location]",
                "copy": {"name": "ids", "count": 2},
            }
        ],
        outputs={"names": {"type": "array", "value": "[createArray('id-0', 'id-1')]"}},
    )
    body = {"properties": {"mode": "Incremental", "template": doc}}
    validated = dc.deployments.begin_validate(setup.group, "dep-copy", body).result()
    names = sorted(r.id.rsplit("/", 1)[-1] for r in validated.properties.validated_resources)
    assert names == ["id-0", "id-1"]
    with pytest.raises(ResourceNotFoundError):  # validate writes nothing
        dc.deployments.get(setup.group, "dep-copy")
    result = dc.deployments.begin_create_or_update(setup.group, "dep-copy", body).result()
    assert result.properties.outputs["names"]["value"] == ["id-0", "id-1"]
    assert dc.deployments.export_template(setup.group, "dep-copy").template == doc
    listed = [d.name for d in dc.deployments.list_by_resource_group(setup.group)]
    assert "dep-copy" in listed
    with pytest.raises(HttpResponseError) as info:  # finished: nothing to cancel
        dc.deployments.cancel(setup.group, "dep-copy")
    assert info.value.status_code == 409
    dc.deployments.begin_delete(setup.group, "dep-copy").result()
    with pytest.raises(ResourceNotFoundError):
        dc.deployments.get(setup.group, "dep-copy")


def test_complete_mode_deletes_what_the_template_does_not_name(
    dc: DeploymentsMgmtClient, raw: RawArm, server: RunningServer
) -> None:
    group = f"rg-complete-{uuid.uuid4().hex[:6]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{group}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    try:

        def identity(name: str) -> dict[str, Any]:
            return {
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "apiVersion": "2023-01-31",
                "name": name,
                "location": "westus",
            }

        deploy(dc, group, "first", template([identity("keep"), identity("extra")]))
        body = {"properties": {"mode": "Complete", "template": template([identity("keep")])}}
        result = dc.deployments.begin_create_or_update(group, "second", body).result()
        assert result.properties.provisioning_state == "Succeeded"
        ops = list(dc.deployment_operations.list(group, "second"))
        deletes = [o for o in ops if o.properties.provisioning_operation == "Delete"]
        assert [o.properties.target_resource.resource_name for o in deletes] == ["extra"]
        base = f"{rg_path}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        assert raw.request("GET", f"{base}/keep", api_version="2023-01-31").status_code == 200
        assert raw.request("GET", f"{base}/extra", api_version="2023-01-31").status_code == 404
    finally:
        raw.request("DELETE", rg_path)


def test_cli_body_with_an_unquoted_template_key_and_comments(raw: RawArm, setup: Setup) -> None:
    """``az deployment group create`` splices the template file's text into the body as-is."""
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{setup.group}/providers/"
        "Microsoft.Resources/deployments/dep-cli"
    )
    file_text = (
        "{\n  // a comment the CLI keeps\n"
        f'  "$schema": "{SCHEMA}",\n  "contentVersion": "1.0.0.0",\n'
        '  /* block */ "resources": [],\n'
        '  "outputs": {"greeting": {"type": "string", "value": "[concat(\'he\', \'llo\')]"},},\n}'
    )
    body = '{"properties": {"parameters": {}, "mode": "Incremental", template:' + file_text + "}}"
    validate = raw.request("POST", f"{path}/validate", api_version="2025-04-01", content=body.encode())
    assert validate.status_code == 200, validate.text
    assert validate.json()["properties"]["provisioningState"] == "Succeeded"
    put = raw.request("PUT", path, api_version="2025-04-01", content=body.encode())
    assert put.status_code == 201, put.text
    op_id = put.headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
    # The operation's status also at Azure's deployment-scoped path.
    status = raw.request("GET", f"{path}/operationStatuses/{op_id}", api_version="2025-04-01")
    assert status.status_code == 200, status.text
    assert status.json()["status"] in ("InProgress", "Succeeded")
    other = raw.request("GET", f"{path}-other/operationStatuses/{op_id}", api_version="2025-04-01")
    assert other.status_code == 404


def test_malformed_body_is_invalid_request_content(raw: RawArm, setup: Setup) -> None:
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{setup.group}/providers/"
        "Microsoft.Resources/deployments/dep-bad"
    )
    for body in (b'{"properties": {"mode": "Sideways", "template": {}}}', b"{nope", b'{"properties": 3}'):
        response = raw.request("PUT", path, api_version="2025-04-01", content=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "InvalidRequestContent"
    link = {"properties": {"mode": "Incremental", "templateLink": {"uri": "https://example.com/t.json"}}}
    response = raw.request("PUT", path, api_version="2025-04-01", json=link)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidContentLink"


def test_secure_parameters_never_leave_the_server(
    dc: DeploymentsMgmtClient, setup: Setup, server: RunningServer
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    doc = template(
        [],
        parameters={"password": {"type": "securestring"}, "plain": {"type": "string"}},
        outputs={"length": {"type": "int", "value": "[length(parameters('password'))]"}},
    )
    result = deploy(dc, setup.group, "dep-secure", doc, password=secret, plain="visible")
    assert result.properties.outputs["length"]["value"] == len(secret)
    shown = dc.deployments.get(setup.group, "dep-secure").as_dict()
    assert secret not in json.dumps(shown)
    assert shown["properties"]["parameters"]["plain"] == {"type": "String", "value": "visible"}
    assert secret not in server.log_text()


def test_what_if_predicts_create_modify_no_change_and_delete(
    dc: DeploymentsMgmtClient, raw: RawArm, server: RunningServer
) -> None:
    group = f"rg-whatif-{uuid.uuid4().hex[:6]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{group}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    try:

        def identity(name: str, **tags: str) -> dict[str, Any]:
            return {
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "apiVersion": "2023-01-31",
                "name": name,
                "location": "westus",
                "tags": tags,
            }

        deploy(
            dc,
            group,
            "base",
            template([identity("same", team="a"), identity("retag", team="a"), identity("old")]),
        )
        proposed = template([identity("same", team="a"), identity("retag", team="b"), identity("new")])
        body = {"properties": {"mode": "Complete", "template": proposed}}
        result = dc.deployments.begin_what_if(group, "preview", body).result()
        kinds = {c.resource_id.rsplit("/", 1)[-1]: c.change_type for c in result.changes}
        assert kinds == {"same": "NoChange", "retag": "Modify", "new": "Create", "old": "Delete"}
        retag = next(c for c in result.changes if c.resource_id.endswith("/retag"))
        assert [(d.path, d.property_change_type, d.before, d.after) for d in retag.delta] == [
            ("tags.team", "Modify", "a", "b")
        ]
        # Nothing changed, and nothing was recorded.
        base = f"{rg_path}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
        assert raw.request("GET", f"{base}/new", api_version="2023-01-31").status_code == 404
        assert raw.request("GET", f"{base}/old", api_version="2023-01-31").status_code == 200
        with pytest.raises(ResourceNotFoundError):
            dc.deployments.get(group, "preview")
    finally:
        raw.request("DELETE", rg_path)


def test_preflight_refuses_an_invalid_container_group_before_anything_deploys(
    dc: DeploymentsMgmtClient, raw: RawArm, setup: Setup
) -> None:
    """A resource the provider would refuse fails the whole deployment up front:
    ``InvalidTemplateDeployment`` with the provider's error inside, nothing recorded or created."""
    bad = container_group("cg-bad", setup.image, sp_credential(setup))
    bad["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = -1
    identity = {
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "apiVersion": "2023-01-31",
        "name": "never-made",
        "location": "westus",
    }
    doc = template(
        [identity, bad], parameters={"appId": {"type": "string"}, "secret": {"type": "securestring"}}
    )
    calls = (dc.deployments.begin_validate, dc.deployments.begin_create_or_update)
    for begin in calls:
        body = {
            "properties": {
                "mode": "Incremental",
                "template": doc,
                "parameters": {"appId": {"value": setup.puller.app_id}, "secret": {"value": "x-secret-x"}},
            }
        }
        with pytest.raises(HttpResponseError) as info:
            begin(setup.group, "dep-preflight", body).result()
        assert info.value.status_code == 400
        error = info.value.response.json()["error"]
        assert error["code"] == "InvalidTemplateDeployment"
        assert error["message"].startswith(
            "The template deployment 'dep-preflight' is not valid according to the validation procedure."
        )
        [detail] = error["details"]
        assert detail["code"] == "InvalidResourceRequirements"
        assert detail["target"] == "properties.containers[0].properties.resources.requests.cpu"
        assert "x-secret-x" not in info.value.response.text()
    with pytest.raises(ResourceNotFoundError):
        dc.deployments.get(setup.group, "dep-preflight")
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{setup.group}/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/never-made"
    )
    assert raw.request("GET", path, api_version="2023-01-31").status_code == 404


def test_subscription_scope_deployment_creates_a_group_and_a_role_assignment(
    dc: DeploymentsMgmtClient, raw: RawArm, server: RunningServer
) -> None:
    group = f"rg-subdep-{uuid.uuid4().hex[:6]}"
    sp = create_principal(raw, "subdep-reader")
    reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    doc = {
        "$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"groupName": {"type": "string"}, "principalId": {"type": "string"}},
        "resources": [
            {
                "type": "Microsoft.Resources/resourceGroups",
                "apiVersion": "2022-09-01",
                "name": "[parameters('groupName')]",
                "location": "[deployment().location]",
                "tags": {"made-by": "[deployment().name]"},
            },
            {
                "type": "Microsoft.Authorization/roleAssignments",
                "apiVersion": "2022-04-01",
                "name": "[guid(subscription().id, parameters('principalId'), 'reader')]",
                "properties": {
                    "roleDefinitionId": f"[subscriptionResourceId({ROLE_DEFINITIONS}, '{reader}')]",
                    "principalId": "[parameters('principalId')]",
                    "principalType": "ServicePrincipal",
                },
            },
        ],
        "outputs": {
            "groupId": {
                "type": "string",
                "value": "[subscriptionResourceId('Microsoft.Resources/resourceGroups', "
                "parameters('groupName'))]",
            }
        },
    }
    body = {
        "location": "westus",
        "properties": {
            "mode": "Incremental",
            "template": doc,
            "parameters": {"groupName": {"value": group}, "principalId": {"value": sp.object_id}},
        },
    }
    try:
        result = dc.deployments.begin_create_or_update_at_subscription_scope("sub-dep", body).result()
        assert result.properties.provisioning_state == "Succeeded"
        assert (
            result.properties.outputs["groupId"]["value"]
            == f"/subscriptions/{server.subscription_id}/resourceGroups/{group}"
        )
        shown = raw.request("GET", f"/subscriptions/{server.subscription_id}/resourcegroups/{group}")
        assert shown.status_code == 200
        assert shown.json()["tags"] == {"made-by": "sub-dep"}
        assignments = raw.request(
            "GET",
            f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/roleAssignments",
            api_version="2022-04-01",
            params={"$filter": f"principalId eq '{sp.object_id}'"},
        ).json()["value"]
        assert [a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] for a in assignments] == [reader]
        listed = [d.name for d in dc.deployments.list_at_subscription_scope()]
        assert "sub-dep" in listed
        ops = list(dc.deployment_operations.list_at_subscription_scope("sub-dep"))
        assert {o.properties.target_resource.resource_type for o in ops} == {
            "Microsoft.Resources/resourceGroups",
            "Microsoft.Authorization/roleAssignments",
        }
    finally:
        raw.request("DELETE", f"/subscriptions/{server.subscription_id}/resourcegroups/{group}")
        for a in raw.request(
            "GET",
            f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/roleAssignments",
            api_version="2022-04-01",
            params={"$filter": f"principalId eq '{sp.object_id}'"},
        ).json()["value"]:
            raw.request("DELETE", a["id"], api_version="2022-04-01")
        delete_principal(raw, sp)


@runs_containers
def test_cancel_a_running_deployment(dc: DeploymentsMgmtClient, raw: RawArm, setup: Setup) -> None:
    """An init container that sleeps keeps the group (and so the deployment) busy; cancel stops
    the deployment: Canceled, its operation status Canceled, the dependent resource never made."""
    slow = container_group("cg-slow", setup.image, sp_credential(setup))
    slow["properties"]["initContainers"] = [
        {"name": "wait", "properties": {"image": setup.image, "command": ["sh", "-c", "sleep 5"]}}
    ]
    after = {
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
        "apiVersion": "2023-01-31",
        "name": "after-slow",
        "location": "westus",
        "dependsOn": ["cg-slow"],
    }
    doc = template(
        [slow, after], parameters={"appId": {"type": "string"}, "secret": {"type": "securestring"}}
    )
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{setup.group}/providers/"
        "Microsoft.Resources/deployments/dep-cancel"
    )
    body = {
        "properties": {
            "mode": "Incremental",
            "template": doc,
            "parameters": {"appId": {"value": setup.puller.app_id}, "secret": {"value": setup.puller.secret}},
        }
    }
    put = raw.request("PUT", path, api_version="2025-04-01", json=body)
    assert put.status_code == 201, put.text
    cancel = raw.request("POST", f"{path}/cancel", api_version="2025-04-01")
    assert cancel.status_code == 204, cancel.text
    status_url = put.headers["Azure-AsyncOperation"]
    deadline = time.monotonic() + 30
    while (status := raw.http.get(status_url, headers={"Authorization": f"Bearer {raw.token}"}).json())[
        "status"
    ] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["status"] == "Canceled"
    shown = dc.deployments.get(setup.group, "dep-cancel")
    assert shown.properties.provisioning_state == "Canceled"
    assert shown.properties.error.code == "DeploymentCanceled"
    identity = (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{setup.group}/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/after-slow"
    )
    assert raw.request("GET", identity, api_version="2023-01-31").status_code == 404
    again = raw.request("POST", f"{path}/cancel", api_version="2025-04-01")
    assert again.status_code == 409
