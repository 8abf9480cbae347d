"""Shared set-up for ``moorage diagnose`` and support-bundle tests against the session server: a
Premium registry holding an amd64 image, an arm64-only image and an attestation-only index; a
user-assigned identity with AcrPull and one without any role; a service principal with AcrPull."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from moorage.instances.access import DIAGNOSIS_TYPE
from tests.api.conftest import RawArm
from tests.api.registry_http import (
    LoginServer,
    Principal,
    assign_role,
    basic,
    create_principal,
    delete_principal,
    small_image,
)
from tests.api.registry_support import TestRegistry as Registry
from tests.api.registry_support import admin_password, create_registry, unique_name, update_registry
from tests.api.test_image_source import attestation_for, index_with
from tests.images import build_image, busybox_image, tar_layer

DIAGNOSTICS_API = "2025-01-01"
MI_API = "2023-01-31"
GROUP_API = "2023-05-01"
DEPLOYMENT_API = "2024-03-01"
PLATFORM_ADDRESS = "100.64.0.1"


@dataclass(frozen=True)
class Setup:
    group: str
    registry: Registry
    admin: str  # the admin password
    identity: str  # user-assigned identity with AcrPull on the registry
    identity_principal: str
    stranger: str  # user-assigned identity without any role
    stranger_principal: str
    puller: Principal  # service principal with AcrPull on the registry

    @property
    def login(self) -> str:
        return self.registry.login_server

    @property
    def image(self) -> str:
        return f"{self.login}/app:v1"


def identity(raw: RawArm, group: str, name: str) -> tuple[str, str]:
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{group}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
    response = raw.request("PUT", path, api_version=MI_API, json={"location": "westus"})
    assert response.status_code in (200, 201), response.text
    body = response.json()
    return body["id"], body["properties"]["principalId"]


def push_index(client: LoginServer, repo: str, tag: str, entries_of: list[Any], auth: dict[str, str]) -> None:
    """Push the images of ``entries_of`` ((image, index entry) pairs) by digest, then their index."""
    for image, _ in entries_of:
        assert client.push(repo, image.manifest.digest, image, auth).status_code == 201
    index = index_with([entry for _, entry in entries_of])
    response = client.http.put(
        f"/v2/{repo}/manifests/{tag}",
        content=index.data,
        headers={**auth, "Content-Type": index.media_type},
    )
    assert response.status_code == 201, response.text


@contextmanager
def diagnose_setup(raw: RawArm, prefix: str) -> Iterator[Setup]:
    name = f"rg-{prefix}-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{name}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    sp = create_principal(raw, f"{prefix}-puller")
    try:
        registry = create_registry(raw, name, unique_name(prefix), adminUserEnabled=True)
        password = admin_password(raw, registry)
        auth = basic(registry.name, password)
        with LoginServer(registry.login_server, raw.server.ca_path) as client:
            assert (
                client.push("app", "v1", busybox_image({"www/index.html": b"diagnosed\n"}), auth).status_code
                == 201
            )
            assert client.push("plain", "v1", small_image("plain"), auth).status_code == 201
            arm64 = build_image([tar_layer({"arm.txt": b"arm64 only\n"})], architecture="arm64")
            assert client.push("arm", "v1", arm64, auth).status_code == 201
            push_index(client, "attested", "v1", [attestation_for(arm64)], auth)
        uami, principal = identity(raw, name, "puller")
        assign_role(raw, registry.id, "AcrPull", principal)
        stranger, stranger_principal = identity(raw, name, "stranger")
        assign_role(raw, registry.id, "AcrPull", sp.object_id)
        yield Setup(name, registry, password, uami, principal, stranger, stranger_principal, sp)
    finally:
        delete_principal(raw, sp)
        raw.request("DELETE", rg_path)


def firewall(
    raw: RawArm,
    setup: Setup,
    *,
    default: str = "Allow",
    bypass: str = "AzureServices",
    public: str = "Enabled",
    rules: tuple[str, ...] = (),
) -> None:
    update_registry(
        raw,
        setup.registry,
        publicNetworkAccess=public,
        networkRuleSet={
            "defaultAction": default,
            "ipRules": [{"action": "Allow", "value": r} for r in rules],
        },
        networkRuleBypassOptions=bypass,
    )


def diagnose_path(raw: RawArm) -> str:
    return f"/subscriptions/{raw.server.subscription_id}/providers/Moorage.Diagnostics/diagnose"


def diagnose_response(raw: RawArm, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    return raw.request(
        "POST", diagnose_path(raw), api_version=DIAGNOSTICS_API, json=body, token=token, timeout=300
    )


def diagnose(raw: RawArm, body: dict[str, Any]) -> dict[str, Any]:
    response = diagnose_response(raw, body)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def only_check(report: dict[str, Any]) -> dict[str, Any]:
    checks = report["checks"]
    assert len(checks) == 1, checks
    check: dict[str, Any] = checks[0]
    return check


def step(check: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in check["steps"] if s["check"] == name)
    return found


def statuses(check: dict[str, Any]) -> list[str]:
    return [s["status"] for s in check["steps"]]


def group_body(
    image: str,
    credentials: list[dict[str, Any]],
    *,
    identities: tuple[str, ...] = (),
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": "westus",
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Never",
            "imageRegistryCredentials": credentials,
            "containers": [
                {
                    "name": "main",
                    "properties": {
                        "image": image,
                        "command": ["/bin/sh", "-c", "cat /www/index.html; sleep 3600"],
                        "environmentVariables": env or [],
                        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                    },
                }
            ],
        },
    }
    if identities:
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {i: {} for i in identities}}
    return body


def group_path(raw: RawArm, setup: Setup, name: str) -> str:
    return (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{setup.group}/providers/"
        f"Microsoft.ContainerInstance/containerGroups/{name}"
    )


def put_group_error(raw: RawArm, setup: Setup, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """PUT a group that must be refused; its ARM error."""
    response = raw.request("PUT", group_path(raw, setup, name), api_version=GROUP_API, json=body, timeout=300)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def diagnosis_of(error: dict[str, Any]) -> dict[str, Any]:
    infos = [i["info"] for i in error.get("additionalInfo") or [] if i.get("type") == DIAGNOSIS_TYPE]
    assert len(infos) == 1, error
    info: dict[str, Any] = infos[0]
    return info


SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"


def deployment_path(raw: RawArm, setup: Setup, name: str) -> str:
    return (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{setup.group}/providers/"
        f"Microsoft.Resources/deployments/{name}"
    )


def template_of(group: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A template deploying one container group (``group``: its name and resource properties)."""
    resource = {
        "type": "Microsoft.ContainerInstance/containerGroups",
        "apiVersion": GROUP_API,
        "name": group["name"],
        "location": "[resourceGroup().location]",
        **{k: v for k, v in group.items() if k != "name"},
    }
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": parameters or {},
        "resources": [resource],
    }


def deploy_group(
    raw: RawArm,
    setup: Setup,
    deployment: str,
    *,
    group: dict[str, Any],
    parameters: dict[str, tuple[str, Any]],
    defaults: dict[str, tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """Deploy a template with one container group resource (``parameters``: name → (type, value
    passed); ``defaults``: name → (type, defaultValue in the template)) and wait until it ends."""
    template = template_of(
        group,
        {k: {"type": v[0]} for k, v in parameters.items()}
        | {k: {"type": v[0], "defaultValue": v[1]} for k, v in (defaults or {}).items()},
    )
    body = {
        "properties": {
            "mode": "Incremental",
            "template": template,
            "parameters": {k: {"value": v[1]} for k, v in parameters.items()},
        }
    }
    path = deployment_path(raw, setup, deployment)
    response = raw.request("PUT", path, api_version=DEPLOYMENT_API, json=body)
    assert response.status_code in (200, 201), response.text
    deadline = time.monotonic() + 120
    while True:
        shown = raw.request("GET", path, api_version=DEPLOYMENT_API).json()
        if shown["properties"]["provisioningState"] not in ("Accepted", "Running"):
            return dict(shown)
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
