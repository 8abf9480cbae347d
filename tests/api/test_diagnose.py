"""``moorage diagnose`` through its API (``POST …/providers/Moorage.Diagnostics/diagnose``)
against the session server: one test per cause class — the cause code, the evidence of the
failing check and its fix — the checks that pass before it, the report of a healthy pull, the
agreement with what a container-group PUT puts into its error, and the API's authorization."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import RawArm, fetch_token
from tests.api.diagnose_support import (
    DEPLOYMENT_API,
    GROUP_API,
    PLATFORM_ADDRESS,
    Setup,
    deploy_group,
    deployment_path,
    diagnose,
    diagnose_response,
    diagnose_setup,
    diagnosis_of,
    firewall,
    group_body,
    group_path,
    only_check,
    put_group_error,
    statuses,
    step,
    template_of,
)
from tests.api.registry_http import LoginServer, assign_role, basic, create_principal, delete_principal
from tests.api.test_container_groups import runs_containers
from tests.images import build_image, tar_layer
from tests.server import RunningServer

PASSED, FAILED, SKIPPED, NA = "passed", "failed", "skipped", "notApplicable"


@pytest.fixture(scope="module")
def setup(raw: RawArm) -> Iterator[Setup]:
    with diagnose_setup(raw, "diag") as prepared:
        yield prepared


def as_identity(setup: Setup, image: str | None = None, uami: str | None = None) -> dict[str, Any]:
    return {"image": image or setup.image, "as": uami or setup.identity}


def as_admin(setup: Setup, image: str) -> dict[str, Any]:
    return {"image": image, "as": setup.registry.name, "password": setup.admin}


def failed_at(check: dict[str, Any], name: str) -> dict[str, Any]:
    """The check failed at step ``name``: every step before it passed (or had nothing to check),
    every step after it was skipped."""
    assert check["result"] == "failed"
    names = [s["check"] for s in check["steps"]]
    index = names.index(name)
    assert statuses(check)[index] == FAILED, check["steps"]
    assert all(s in (PASSED, NA) for s in statuses(check)[:index]), check["steps"]
    assert all(s == SKIPPED for s in statuses(check)[index + 1 :]), check["steps"]
    assert check["check"] == name
    fix = check["fix"]
    assert fix["text"]
    assert fix["command"]
    assert fix["template"]
    return step(check, name)


# -- healthy ------------------------------------------------------------------------------------------


def test_managed_identity_through_the_bypass_passes_every_check(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    report = diagnose(raw, as_identity(setup))
    assert report["result"] == "Passed"
    assert report["cause"] is None
    assert report["platformAddress"] == PLATFORM_ADDRESS
    check = only_check(report)
    assert statuses(check) == [PASSED] * 7
    reference = step(check, "reference")["evidence"]
    assert reference["normalized"] == setup.image
    assert reference["registryKind"] == "moorage"
    assert reference["registryId"] == setup.registry.id
    assert reference["channel"] == "platform"
    wall = step(check, "firewall")["evidence"]
    assert wall["defaultAction"] == "Deny"
    assert wall["pullerAddress"] == PLATFORM_ADDRESS
    assert wall["reason"] == "trusted-service-bypass"
    assert wall["addressVerdict"] == "denied"
    assert wall["trustedServicesBypass"]["applies"] is True
    assert wall["trustedServicesBypass"]["managedIdentity"] is True
    assert wall["trustedServicesBypass"]["sku"] == "Premium"
    auth = step(check, "authentication")["evidence"]
    assert auth["credentialKind"] == "managedIdentity"
    assert auth["challenge"]["status"] == 401
    assert auth["challenge"]["challenge"]["scheme"] == "Bearer"
    exchanges = [e["request"].split()[1].rsplit("/", 1)[-1] for e in auth["tokenExchange"]]
    assert exchanges == ["exchange", "token"]
    assert all(e["status"] == 200 for e in auth["tokenExchange"])
    assert auth["grantedScope"] == [{"type": "repository", "name": "app", "actions": ["pull"]}]
    rbac = step(check, "authorization")["evidence"]
    assert rbac["principalId"] == setup.identity_principal
    assert rbac["granted"] is True
    assert [(a["role"], a["grantsPull"]) for a in rbac["roleAssignments"]] == [("AcrPull", True)]
    manifest = step(check, "manifest")["evidence"]
    assert manifest["digest"].startswith("sha256:")
    assert manifest["platform"] == "linux/amd64"
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    blobs = step(check, "blobs")["evidence"]["blobs"]
    assert len(blobs) == 3  # config and two layers
    assert all(b["status"] == 200 and b["sizeMatches"] for b in blobs)


def test_the_ip_rule_that_matched_the_platform_is_named(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="None", rules=("203.0.113.0/24", "100.64.0.0/16"))
    check = only_check(diagnose(raw, as_admin(setup, setup.image)))
    assert check["result"] == "passed"
    wall = step(check, "firewall")["evidence"]
    assert wall["matchedIpRule"] == "100.64.0.0/16"
    assert wall["reason"] == "ip-rule"
    assert wall["trustedServicesBypass"]["applies"] is False
    assert step(check, "authorization")["evidence"]["rule"].startswith("the admin user")


# -- one test per cause -----------------------------------------------------------------------------


def test_bad_reference(raw: RawArm, setup: Setup) -> None:
    check = only_check(diagnose(raw, {"image": "Not A/Reference::x"}))
    assert check["cause"] == "InvalidImageReference"
    evidence = failed_at(check, "reference")["evidence"]
    assert evidence["input"] == "Not A/Reference::x"
    assert check["evidence"]["detail"]
    assert "<registry>/<repository>:<tag>" in check["fix"]["template"]


def test_repository_missing(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    check = only_check(diagnose(raw, as_admin(setup, f"{setup.login}/nothere:v1")))
    assert check["cause"] == "RepositoryNotFound"
    failed_at(check, "manifest")
    assert check["evidence"]["status"] == 404
    assert check["evidence"]["registryCode"] == "NAME_UNKNOWN"
    assert check["fix"]["command"] == f"moorage image push <source> {setup.login}/nothere:v1"


def test_tag_missing(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    check = only_check(diagnose(raw, as_admin(setup, f"{setup.login}/app:nope")))
    assert check["cause"] == "TagNotFound"
    evidence = failed_at(check, "manifest")["evidence"]
    assert evidence["requests"][0]["status"] == 404
    assert check["evidence"]["registryCode"] == "MANIFEST_UNKNOWN"
    assert check["fix"]["command"] == f"az acr repository show-tags -n {setup.registry.name} --repository app"


def test_wrong_service_principal_secret(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    report = diagnose(raw, {"image": setup.image, "as": setup.puller.app_id, "password": "not-the-secret"})
    check = only_check(report)
    assert check["cause"] == "CredentialsRejected"
    auth = failed_at(check, "authentication")["evidence"]
    assert auth["credentialKind"] == "servicePrincipal"
    assert auth["username"] == setup.puller.app_id
    assert auth["tokenExchange"][0]["status"] == 401
    assert check["evidence"]["status"] == 401
    assert check["fix"]["command"] == f"az ad sp credential reset --id {setup.puller.app_id}"
    assert "registryPassword" in check["fix"]["template"]
    assert "not-the-secret" not in json.dumps(report)


def test_identity_without_a_role(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    check = only_check(diagnose(raw, as_identity(setup, uami=setup.stranger)))
    assert check["cause"] == "MissingRole"
    rbac = failed_at(check, "authorization")["evidence"]
    assert rbac["principalId"] == setup.stranger_principal
    assert rbac["roleAssignments"] == []
    assert rbac["granted"] is False
    assert rbac["action"] == "Microsoft.ContainerRegistry/registries/pull/read"
    assert rbac["scope"] == setup.registry.id
    # The token service answered, with nothing granted.
    assert rbac["grantedScope"] == [{"type": "repository", "name": "app", "actions": []}]
    assert check["evidence"]["registryCode"] in ("UNAUTHORIZED", "DENIED")
    assert check["fix"]["command"] == (
        f"az role assignment create --assignee-object-id {setup.stranger_principal} "
        f"--assignee-principal-type ServicePrincipal --role AcrPull --scope {setup.registry.id}"
    )
    assert "Microsoft.Authorization/roleAssignments" in check["fix"]["template"]


def test_identity_that_does_not_exist(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    ghost = setup.identity.rsplit("/", 1)[0] + "/ghost"
    check = only_check(diagnose(raw, as_identity(setup, uami=ghost)))
    assert check["cause"] == "IdentityNotFound"
    failed_at(check, "authentication")
    assert check["evidence"]["identity"] == ghost
    assert check["fix"]["command"] == "az identity create -g <resource group> -n ghost"


def test_firewall_denies_and_bypass_is_off(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="None")
    check = only_check(diagnose(raw, as_identity(setup)))
    assert check["cause"] == "FirewallBypassDisabled"
    wall = failed_at(check, "firewall")["evidence"]
    assert wall["decision"] == "denied"
    assert wall["reason"] == "default-deny"
    assert wall["matchedIpRule"] is None
    assert wall["pullerAddress"] == PLATFORM_ADDRESS
    assert wall["trustedServicesBypass"]["bypassEnabled"] is False
    assert wall["trustedServicesBypass"]["managedIdentity"] is True
    assert wall["trustedServicesBypass"]["applies"] is False
    assert check["evidence"]["status"] == 403
    assert check["evidence"]["registryMessage"] == (
        f"client with IP '{PLATFORM_ADDRESS}' is not allowed access. Refer https://aka.ms/acr/firewall to "
        "grant access."
    )
    assert check["fix"]["command"] == f"az acr update -n {setup.registry.name} --allow-trusted-services true"
    assert '"networkRuleBypassOptions": "AzureServices"' in check["fix"]["template"]


def test_bypass_does_not_apply_to_a_service_principal(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    body = {"image": setup.image, "as": setup.puller.app_id, "password": setup.puller.secret}
    check = only_check(diagnose(raw, body))
    assert check["cause"] == "FirewallBlocksPlatform"
    wall = failed_at(check, "firewall")["evidence"]
    bypass = wall["trustedServicesBypass"]
    assert bypass["bypassEnabled"] is True
    assert bypass["managedIdentity"] is False
    assert bypass["applies"] is False
    assert wall["decision"] == "denied"
    assert check["evidence"]["credentialKind"] == "servicePrincipal"
    assert "not to a servicePrincipal credential" in check["summary"]
    assert "--allow-trusted-services true" in check["fix"]["command"]
    assert "--role AcrPull" in check["fix"]["command"]
    assert '"userAssignedIdentities"' in check["fix"]["template"]
    assert '"identity": "<identity resource id>"' in check["fix"]["template"]


def test_public_network_access_disabled(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="None", public="Disabled")
    check = only_check(diagnose(raw, as_identity(setup)))
    assert check["cause"] == "PublicNetworkAccessDisabled"
    wall = failed_at(check, "firewall")["evidence"]
    assert wall["publicNetworkAccess"] == "Disabled"
    assert wall["reason"] == "public-access-disabled"
    assert check["evidence"]["registry"]["publicNetworkAccess"] == "Disabled"
    assert check["fix"]["command"] == f"az acr update -n {setup.registry.name} --allow-trusted-services true"


def test_registry_unreachable(raw: RawArm, setup: Setup) -> None:
    check = only_check(diagnose(raw, {"image": "127.0.0.1:9/app:v1"}))
    assert check["cause"] == "RegistryUnreachable"
    reach = failed_at(check, "reachability")["evidence"]
    assert reach["channel"] == "network"
    assert reach["peer"] == "127.0.0.1:9"
    assert "ConnectError" in reach["error"]
    assert step(check, "reference")["evidence"]["registryKind"] == "remote"
    assert check["evidence"]["step"] == "connect"
    assert check["fix"]["command"] == "az acr show -n <registry> --query loginServer"


def test_registry_tls_failure(raw: RawArm, server: RunningServer, setup: Setup) -> None:
    # The ARM endpoint serves a certificate of moorage's own CA, which the platform's trust store
    # (the public CAs) does not hold.
    host = server.endpoint.removeprefix("https://")
    check = only_check(diagnose(raw, {"image": f"{host}/app:v1"}))
    assert check["cause"] == "RegistryTlsFailure"
    reach = failed_at(check, "reachability")["evidence"]
    assert "certificate verify failed" in reach["detail"]
    assert check["evidence"]["step"] == "tls"


def test_no_linux_amd64_image(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    check = only_check(diagnose(raw, as_admin(setup, f"{setup.login}/arm:v1")))
    assert check["cause"] == "NoMatchingPlatform"
    failed_at(check, "manifest")
    assert "linux/arm64" in check["evidence"]["detail"]
    assert "linux/amd64" in check["fix"]["text"]


def test_attestation_only_index_has_no_platform(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    check = only_check(diagnose(raw, as_admin(setup, f"{setup.login}/attested:v1")))
    assert check["cause"] == "NoMatchingPlatform"
    manifest = failed_at(check, "manifest")["evidence"]
    assert manifest["attestationOnly"] is True
    assert [e["attestation"] for e in manifest["indexEntries"]] == [True]
    assert "available: none" in check["evidence"]["detail"]


def test_anonymous_pull_of_a_private_registry(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    check = only_check(diagnose(raw, {"image": setup.image}))
    assert check["cause"] == "AuthenticationRequired"
    assert failed_at(check, "authentication")["evidence"]["credentialKind"] == "anonymous"


# -- agreement with container groups ------------------------------------------------------------------


AGREEMENT = [
    "CredentialsRejected",
    "FirewallBlocksPlatform",
    "MissingRole",
    "FirewallBypassDisabled",
    "TagNotFound",
]


@pytest.mark.parametrize("cause", AGREEMENT)
def test_the_put_error_and_the_diagnosis_name_the_same_cause(raw: RawArm, setup: Setup, cause: str) -> None:
    sp_secret = "not-the-secret" if cause == "CredentialsRejected" else setup.puller.secret
    image = f"{setup.login}/app:nope" if cause == "TagNotFound" else setup.image
    if cause in ("CredentialsRejected", "FirewallBlocksPlatform"):
        firewall(raw, setup, default="Allow" if cause == "CredentialsRejected" else "Deny")
        credential = {"server": setup.login, "username": setup.puller.app_id, "password": sp_secret}
        body = group_body(image, [credential])
        ask = {"image": image, "as": setup.puller.app_id, "password": sp_secret}
    else:
        firewall(
            raw,
            setup,
            default="Deny",
            bypass="None" if cause == "FirewallBypassDisabled" else "AzureServices",
        )
        uami = setup.stranger if cause == "MissingRole" else setup.identity
        body = group_body(image, [{"server": setup.login, "identity": uami}], identities=(uami,))
        ask = {"image": image, "as": uami}
    error = put_group_error(raw, setup, f"cg-agree-{uuid.uuid4().hex[:6]}", body)
    assert error["code"] == "InaccessibleImage"
    put_cause = diagnosis_of(error)
    check = only_check(diagnose(raw, ask))
    assert put_cause["cause"] == check["cause"] == cause
    assert put_cause["check"] == check["check"]
    assert put_cause["fixCommand"] == check["fix"]["command"]


def test_identity_not_attached_is_named_in_the_put_error(raw: RawArm, setup: Setup) -> None:
    body = group_body(
        setup.image, [{"server": setup.login, "identity": setup.identity}], identities=(setup.stranger,)
    )
    error = put_group_error(raw, setup, "cg-unattached", body)
    assert error["code"] == "InvalidImageRegistryIdentity"
    found = diagnosis_of(error)
    assert found["cause"] == "IdentityNotAttached"
    assert found["check"] == "authentication"
    assert found["evidence"]["groupIdentities"] == [setup.stranger]
    assert (
        found["fixCommand"]
        == f"az container create ... --assign-identity {setup.identity} --acr-identity {setup.identity}"
    )
    assert setup.identity in found["templateChange"]


def test_missing_identity_is_named_in_the_put_error(raw: RawArm, setup: Setup) -> None:
    ghost = setup.identity.rsplit("/", 1)[0] + "/ghost"
    body = group_body(setup.image, [{"server": setup.login, "identity": ghost}], identities=(ghost,))
    error = put_group_error(raw, setup, "cg-ghost", body)
    assert error["code"] == "FailedIdentityOperation"
    assert diagnosis_of(error)["cause"] == "IdentityNotFound"


# -- the API --------------------------------------------------------------------------------------------


def test_a_caller_without_read_on_the_registry_is_refused(
    raw: RawArm, server: RunningServer, setup: Setup
) -> None:
    outsider = create_principal(raw, "diag-outsider")
    try:
        token = fetch_token(server, outsider.app_id, outsider.secret)
        response = diagnose_response(raw, as_identity(setup), token=token)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "AuthorizationFailed"
        assert "Microsoft.ContainerRegistry/registries/read" in response.json()["error"]["message"]
        # Reader on the registry is not enough to act as someone else's identity.
        assign_role(raw, setup.registry.id, "Reader", outsider.object_id)
        response = diagnose_response(raw, as_identity(setup), token=token)
        assert response.status_code == 403, response.text
        assert "userAssignedIdentities/assign/action" in response.json()["error"]["message"]
        # ... but it may check the image with a credential it holds.
        body = {"image": setup.image, "as": setup.puller.app_id, "password": setup.puller.secret}
        firewall(raw, setup)
        response = diagnose_response(raw, body, token=token)
        assert response.status_code == 200, response.text
        assert response.json()["result"] == "Passed"
    finally:
        delete_principal(raw, outsider)


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({}, None),
        ({"image": "x/y:z", "target": "/subscriptions/x"}, None),
        ({"image": 7}, "image"),
        ({"image": "a/b:c", "as": "00000000-0000-0000-0000-000000000001"}, "password"),
    ],
    ids=["empty", "both", "not-a-string", "sp-without-password"],
)
def test_bad_requests_are_400(raw: RawArm, setup: Setup, body: dict[str, Any], target: str | None) -> None:
    response = diagnose_response(raw, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidRequestContent"
    assert error.get("target") == target


def test_a_missing_container_group_is_404(raw: RawArm, setup: Setup) -> None:
    target = (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{setup.group}/providers/"
        "Microsoft.ContainerInstance/containerGroups/nothere"
    )
    response = diagnose_response(raw, {"target": target})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "ResourceNotFound"


def test_server_info_shows_version_and_settings_without_secrets(raw: RawArm, server: RunningServer) -> None:
    response = raw.request(
        "GET",
        f"/subscriptions/{server.subscription_id}/providers/Moorage.Diagnostics/serverInfo",
        api_version="2025-01-01",
    )
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["version"]
    assert info["settings"]["platform_address"] == PLATFORM_ADDRESS
    assert info["settings"]["home"] == str(server.home)
    assert server.client_secret not in response.text


# -- deployments and container groups ------------------------------------------------------------------


def failed_operation_cause(raw: RawArm, setup: Setup, deployment: str) -> str:
    ops = raw.request(
        "GET", deployment_path(raw, setup, deployment) + "/operations", api_version=DEPLOYMENT_API
    )
    failed = [o for o in ops.json()["value"] if o["properties"]["provisioningState"] == "Failed"]
    assert len(failed) == 1, failed
    return str(diagnosis_of(failed[0]["properties"]["statusMessage"]["error"])["cause"])


def sp_group(setup: Setup, name: str) -> dict[str, Any]:
    credential = {
        "server": setup.login,
        "username": "[parameters('appId')]",
        "password": "[parameters('secret')]",
    }
    body = group_body(setup.image, [credential])
    return {"name": name, "properties": body["properties"]}


@pytest.mark.parametrize(
    ("case", "cause"),
    [("wrong-password", "CredentialsRejected"), ("firewall", "FirewallBlocksPlatform")],
)
def test_a_failed_deployment_is_diagnosed_from_its_request(
    raw: RawArm, setup: Setup, case: str, cause: str
) -> None:
    firewall(raw, setup, default="Deny" if case == "firewall" else "Allow")
    secret = "not-the-secret" if case == "wrong-password" else setup.puller.secret
    name = f"dep-{case}"
    shown = deploy_group(
        raw,
        setup,
        name,
        group=sp_group(setup, f"cg-{case}"),
        parameters={"appId": ("string", setup.puller.app_id), "secret": ("securestring", secret)},
    )
    assert shown["properties"]["provisioningState"] == "Failed"
    target = deployment_path(raw, setup, name)
    report = diagnose(raw, {"target": target})
    assert report["target"] == {"kind": "deployment", "id": shown["id"], "provisioningState": "Failed"}
    assert report["cause"] == cause
    # The operation's own error names the same cause.
    assert failed_operation_cause(raw, setup, name) == cause
    [group] = report["groups"]
    assert group["source"] == "deploymentOperation"
    assert group["name"] == f"cg-{case}"
    assert group["operationError"]["code"] == "InaccessibleImage"
    check = only_check(report)
    assert check["group"] == group["id"]
    assert check["image"] == setup.image
    assert check["evidence"]["username"] == setup.puller.app_id
    assert secret not in json.dumps(report)


def test_preflight_names_the_unattached_identity(raw: RawArm, setup: Setup) -> None:
    """A body known up front is checked before the deployment starts: the refusal's inner error
    carries the same cause."""
    body = group_body(
        setup.image, [{"server": setup.login, "identity": setup.identity}], identities=(setup.stranger,)
    )
    response = raw.request(
        "PUT",
        deployment_path(raw, setup, "dep-preflight"),
        api_version=DEPLOYMENT_API,
        json={"properties": {"mode": "Incremental", "template": template_of({"name": "cg-pre", **body})}},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidTemplateDeployment"
    [inner] = error["details"]
    assert inner["code"] == "InvalidImageRegistryIdentity"
    assert diagnosis_of(inner)["cause"] == "IdentityNotAttached"


def test_a_deployment_refused_for_an_unattached_identity(raw: RawArm, setup: Setup) -> None:
    """A body that needs a runtime value (here a tag read with reference()) is only checked when
    the deployment sends it: the deployment fails, and diagnose reads the request it sent."""
    body = group_body(
        setup.image, [{"server": setup.login, "identity": setup.identity}], identities=(setup.stranger,)
    )
    body["tags"] = {"principal": f"[reference('{setup.stranger}', '2023-01-31').principalId]"}
    shown = deploy_group(
        raw, setup, "dep-unattached", group={"name": "cg-unattached-dep", **body}, parameters={}
    )
    assert shown["properties"]["provisioningState"] == "Failed"
    assert failed_operation_cause(raw, setup, "dep-unattached") == "IdentityNotAttached"
    report = diagnose(raw, {"target": deployment_path(raw, setup, "dep-unattached")})
    assert report["cause"] == "IdentityNotAttached"
    check = only_check(report)
    assert check["image"] is None
    assert step(check, "authentication")["status"] == FAILED
    assert check["evidence"]["identity"] == setup.identity
    assert check["fix"]["command"].endswith(
        f"--assign-identity {setup.identity} --acr-identity {setup.identity}"
    )


def test_a_deployment_without_failures_says_so(raw: RawArm, setup: Setup) -> None:
    shown = deploy_group(raw, setup, "dep-empty", group={"name": "unused", "condition": False}, parameters={})
    assert shown["properties"]["provisioningState"] == "Succeeded"
    report = diagnose(raw, {"target": deployment_path(raw, setup, "dep-empty")})
    assert report["result"] == "Passed"
    assert report["checks"] == []
    assert report["notes"] == ["The deployment has no failed container-group operation."]


@runs_containers
def test_an_existing_group_is_diagnosed_with_its_own_credentials(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    name = "cg-diagnosed"
    path = group_path(raw, setup, name)
    body = group_body(
        setup.image, [{"server": setup.login, "identity": setup.identity}], identities=(setup.identity,)
    )
    created = raw.request("PUT", path, api_version=GROUP_API, json=body, timeout=300)
    assert created.status_code == 201, created.text
    try:
        report = diagnose(raw, {"target": path})
        assert report["result"] == "Passed"
        assert report["groups"] == [{"id": created.json()["id"], "name": name, "source": "containerGroup"}]
        assert only_check(report)["group"] == created.json()["id"]
        # The registry's firewall changes under the running group: the next pull would fail.
        firewall(raw, setup, default="Deny", bypass="None")
        report = diagnose(raw, {"target": path})
        assert report["cause"] == "FirewallBypassDisabled"
        assert only_check(report)["evidence"]["identity"] == setup.identity
    finally:
        raw.request("DELETE", path, api_version=GROUP_API, timeout=120)


def test_a_layer_the_registry_lost(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    image = build_image([tar_layer({"a.txt": b"kept\n"}), tar_layer({"b.txt": b"lost\n"})])
    auth = basic(setup.registry.name, setup.admin)
    with LoginServer(setup.login, raw.server.ca_path) as client:
        assert client.push("holes", "v1", image, auth).status_code == 201
        lost = image.layers[1].digest
        deleted = client.http.delete(f"/v2/holes/blobs/{lost}", headers=auth)
        assert deleted.status_code == 202, deleted.text
    check = only_check(diagnose(raw, as_admin(setup, f"{setup.login}/holes:v1")))
    assert check["cause"] == "BlobUnavailable"
    blobs = failed_at(check, "blobs")["evidence"]["blobs"]
    assert [(b["digest"], b["status"]) for b in blobs] == [
        (image.config.digest, 200),
        (image.layers[0].digest, 200),
        (lost, 404),
    ]
    assert check["evidence"]["url"].endswith(f"/v2/holes/blobs/{lost}")
    assert check["fix"]["command"] == f"moorage image push <source> {setup.login}/holes:v1"
