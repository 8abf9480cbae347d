"""Whole templates, deployed through the SDK and run on runc: the seed template (registry behind
its firewall, user-assigned identity, AcrPull assignment, container group pulling with the
identity) with the trusted-services bypass off and then on, and Azure's multi-container group
tutorial (an app and a sidecar), rewritten to use a moorage registry.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient

from moorage.instances.access import DIAGNOSIS_TYPE
from tests.api.conftest import RawArm
from tests.api.registry_support import TestRegistry as Registry
from tests.api.registry_support import (
    admin_password,
    cert_dir,
    create_registry,
    skopeo,
    unique_name,
    update_registry,
)
from tests.api.test_container_groups import eventually, free_port, runs_containers
from tests.conftest import sdk_kwargs
from tests.images import busybox_image, write_layout
from tests.server import RunningServer

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
ACR = "Microsoft.ContainerRegistry/registries"
UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"
ACI = "Microsoft.ContainerInstance/containerGroups"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
PAGE = b"<h1>Welcome to Azure Container Instances!</h1>\n"

# The seed: everything the article's fix needs, in one template; the bypass is a parameter.
SEED: dict[str, Any] = {
    "$schema": SCHEMA,
    "contentVersion": "1.0.0.0",
    "parameters": {
        "registryName": {"type": "string"},
        "bypass": {"type": "string", "allowedValues": ["None", "AzureServices"]},
        "port": {"type": "int"},
    },
    "variables": {
        "identityName": "[concat(parameters('registryName'), '-puller')]",
        "identityId": f"[resourceId('{UAMI}', variables('identityName'))]",
        "registryId": f"[resourceId('{ACR}', parameters('registryName'))]",
        "acrPull": f"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{ACR_PULL}')]",
        "assignment": "[guid(variables('registryId'), variables('identityId'), variables('acrPull'))]",
    },
    "resources": [
        {
            "type": ACR,
            "apiVersion": "2023-07-01",
            "name": "[parameters('registryName')]",
            "location": "[resourceGroup().location]",
            "sku": {"name": "Premium"},
            "properties": {
                "adminUserEnabled": True,
                "networkRuleSet": {"defaultAction": "Deny", "ipRules": []},
                "networkRuleBypassOptions": "[parameters('bypass')]",
            },
        },
        {
            "type": UAMI,
            "apiVersion": "2023-01-31",
            "name": "[variables('identityName')]",
            "location": "[resourceGroup().location]",
        },
        {
            "type": "Microsoft.Authorization/roleAssignments",
            "apiVersion": "2022-04-01",
            "name": "[variables('assignment')]",
            "scope": f"[concat('{ACR}/', parameters('registryName'))]",
            "dependsOn": ["[variables('registryId')]"],
            "properties": {
                "roleDefinitionId": "[variables('acrPull')]",
                "principalId": "[reference(variables('identityId')).principalId]",
                "principalType": "ServicePrincipal",
            },
        },
        {
            "type": ACI,
            "apiVersion": "2023-05-01",
            "name": "cg-seed",
            "location": "[resourceGroup().location]",
            "dependsOn": [
                "[extensionResourceId(variables('registryId'), 'Microsoft.Authorization/roleAssignments', "
                "variables('assignment'))]"
            ],
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {"[variables('identityId')]": {}}},
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Always",
                "imageRegistryCredentials": [
                    {
                        "server": "[reference(variables('registryId')).loginServer]",
                        "identity": "[variables('identityId')]",
                    }
                ],
                "containers": [
                    {
                        "name": "app",
                        "properties": {
                            "image": "[concat(reference(variables('registryId')).loginServer, '/app:v1')]",
                            "command": [
                                "sh",
                                "-c",
                                "[format('echo serving; exec httpd -f -p {0} -h /www', parameters('port'))]",
                            ],
                            "ports": [{"port": "[parameters('port')]"}],
                            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                        },
                    }
                ],
                "ipAddress": {
                    "type": "Public",
                    "ports": [{"protocol": "TCP", "port": "[parameters('port')]"}],
                },
            },
        },
    ],
    "outputs": {
        "loginServer": {"type": "string", "value": "[reference(variables('registryId')).loginServer]"},
        "ip": {
            "type": "string",
            "value": f"[reference(resourceId('{ACI}', 'cg-seed')).ipAddress.ip]",
        },
    },
}

# Azure's multi-container tutorial (aci-tutorial-app + aci-tutorial-sidecar), images moved to a
# moorage registry, the host ports made parameters, and busybox standing in for the node apps.
TUTORIAL: dict[str, Any] = {
    "$schema": SCHEMA,
    "contentVersion": "1.0.0.0",
    "parameters": {
        "containerGroupName": {"type": "string", "defaultValue": "myContainerGroup"},
        "registry": {"type": "string"},
        "registryUser": {"type": "string"},
        "registryPassword": {"type": "securestring"},
        "appPort": {"type": "int"},
    },
    "variables": {
        "container1name": "aci-tutorial-app",
        "container1image": "[concat(parameters('registry'), '/aci-helloworld:latest')]",
        "container2name": "aci-tutorial-sidecar",
        "container2image": "[concat(parameters('registry'), '/aci-tutorial-sidecar')]",
    },
    "resources": [
        {
            "name": "[parameters('containerGroupName')]",
            "type": ACI,
            "apiVersion": "2019-12-01",
            "location": "[resourceGroup().location]",
            "properties": {
                "imageRegistryCredentials": [
                    {
                        "server": "[parameters('registry')]",
                        "username": "[parameters('registryUser')]",
                        "password": "[parameters('registryPassword')]",
                    }
                ],
                "containers": [
                    {
                        "name": "[variables('container1name')]",
                        "properties": {
                            "image": "[variables('container1image')]",
                            "command": [
                                "sh",
                                "-c",
                                "[concat('exec httpd -f -h /www -p ', string(parameters('appPort')))]",
                            ],
                            "resources": {"requests": {"cpu": 1, "memoryInGb": 1.5}},
                            "ports": [{"port": "[parameters('appPort')]"}],
                        },
                    },
                    {
                        "name": "[variables('container2name')]",
                        "properties": {
                            "image": "[variables('container2image')]",
                            "command": [
                                "sh",
                                "-c",
                                "[format('while true; do wget -q -O - http://localhost:{0}/ || echo down; "
                                "sleep 1; done', parameters('appPort'))]",
                            ],
                            "resources": {"requests": {"cpu": 1, "memoryInGb": 1.5}},
                        },
                    },
                ],
                "osType": "Linux",
                "ipAddress": {
                    "type": "Public",
                    "ports": [{"protocol": "tcp", "port": "[parameters('appPort')]"}],
                },
            },
        }
    ],
    "outputs": {
        "containerIPv4Address": {
            "type": "string",
            "value": f"[reference(resourceId('{ACI}/', parameters('containerGroupName'))).ipAddress.ip]",
        }
    },
}


@dataclass(frozen=True)
class Setup:
    group: str
    registry: Registry
    admin: str


@pytest.fixture(scope="module")
def dc(server: RunningServer, credential: ClientSecretCredential) -> Iterator[DeploymentsMgmtClient]:
    with DeploymentsMgmtClient(credential, server.subscription_id, **sdk_kwargs(server)) as client:
        yield client


@pytest.fixture(scope="module")
def aci(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[ContainerInstanceManagementClient]:
    with ContainerInstanceManagementClient(
        credential, server.subscription_id, **sdk_kwargs(server)
    ) as client:
        yield client


@pytest.fixture(scope="module")
def setup(server: RunningServer, raw: RawArm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A resource group and a Premium registry (admin on) holding the scenario images."""
    name = f"rg-scn-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{name}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    registry = create_registry(raw, name, unique_name("scn"), adminUserEnabled=True)
    password = admin_password(raw, registry)
    where = tmp_path_factory.mktemp("scn")
    certs = cert_dir(server.ca_path, where / "certs")
    for repo, tag in (("app", "v1"), ("aci-helloworld", "latest"), ("aci-tutorial-sidecar", "latest")):
        layout = write_layout(where / repo, tag, busybox_image({"www/index.html": PAGE}))
        result = skopeo(
            "copy",
            "--dest-cert-dir",
            str(certs),
            "--dest-creds",
            f"{registry.name}:{password}",
            f"oci:{layout}:{tag}",
            f"docker://{registry.login_server}/{repo}:{tag}",
        )
        assert result.returncode == 0, result.stderr
    yield Setup(name, registry, password)
    raw.request("DELETE", rg_path)


def _deploy(dc: DeploymentsMgmtClient, group: str, name: str, template: dict[str, Any], **params: Any) -> Any:
    body = {
        "properties": {
            "mode": "Incremental",
            "template": template,
            "parameters": {k: {"value": v} for k, v in params.items()},
        }
    }
    return dc.deployments.begin_create_or_update(group, name, body).result()


@runs_containers
def test_seed_template_without_bypass_fails_and_with_it_runs(
    dc: DeploymentsMgmtClient, aci: ContainerInstanceManagementClient, setup: Setup
) -> None:
    port = free_port()
    name = setup.registry.name
    with pytest.raises(HttpResponseError) as info:
        _deploy(dc, setup.group, "seed-none", SEED, registryName=name, bypass="None", port=port)
    body = info.value.response.json()["error"]
    assert body["code"] == "DeploymentFailed"
    [detail] = body["details"]
    image = f"{setup.registry.login_server}/app:v1"
    assert detail["code"] == "InaccessibleImage"
    assert detail["message"] == (
        f"The image '{image}' in container group 'cg-seed' is not accessible. Please check the image and "
        "registry credential."
    )
    [diagnosis] = [i["info"] for i in detail["additionalInfo"] if i["type"] == DIAGNOSIS_TYPE]
    assert diagnosis["cause"] == "FirewallBypassDisabled"
    ops = {
        o.properties.target_resource.resource_type: o.properties
        for o in dc.deployment_operations.list(setup.group, "seed-none")
    }
    assert ops[ACI].provisioning_state == "Failed"
    assert ops[ACI].status_code == "BadRequest"
    assert ops[ACI].status_message.error.code == "InaccessibleImage"
    assert {t: p.provisioning_state for t, p in ops.items() if t != ACI} == {
        ACR: "Succeeded",
        UAMI: "Succeeded",
        "Microsoft.Authorization/roleAssignments": "Succeeded",
    }

    result = _deploy(
        dc, setup.group, "seed-bypass", SEED, registryName=name, bypass="AzureServices", port=port
    )
    assert result.properties.provisioning_state == "Succeeded"
    assert result.properties.outputs["loginServer"]["value"] == setup.registry.login_server
    running = eventually(
        lambda: (
            g
            if (g := aci.container_groups.get(setup.group, "cg-seed")).instance_view.state == "Running"
            else None
        ),
        what="the seed group running",
    )
    assert running.ip_address.ip == result.properties.outputs["ip"]["value"]
    page = eventually(lambda: _get(f"http://127.0.0.1:{port}/"), what="the app answering")
    assert page == PAGE.decode()


def _get(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


@runs_containers
def test_multi_container_tutorial_template_deploys_and_runs(
    dc: DeploymentsMgmtClient, aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    # The admin user pulls from outside the platform's trusted path: open the firewall (the seed
    # scenario may have closed it).
    update_registry(raw, setup.registry, networkRuleSet={"defaultAction": "Allow", "ipRules": []})
    port = free_port()
    result = _deploy(
        dc,
        setup.group,
        "tutorial",
        TUTORIAL,
        containerGroupName="tutorial-group",
        registry=setup.registry.login_server,
        registryUser=setup.registry.name,
        registryPassword=setup.admin,
        appPort=port,
    )
    assert result.properties.provisioning_state == "Succeeded"
    group = aci.container_groups.get(setup.group, "tutorial-group")
    assert result.properties.outputs["containerIPv4Address"]["value"] == group.ip_address.ip
    assert eventually(lambda: _get(f"http://127.0.0.1:{port}/"), what="the app answering") == PAGE.decode()

    def sidecar_saw_the_app() -> str | None:
        logs = aci.containers.list_logs(setup.group, "tutorial-group", "aci-tutorial-sidecar").content or ""
        return logs if "Welcome to Azure Container Instances!" in logs else None

    eventually(sidecar_saw_the_app, what="the sidecar reaching the app over localhost")
    assert setup.admin not in str(dc.deployments.get(setup.group, "tutorial").as_dict())
