"""Shared helpers for registry tests: registries created through ARM, client trust set-up."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.api.conftest import RawArm

API = "2025-04-01"


@dataclass(frozen=True)
class TestRegistry:
    id: str
    name: str
    login_server: str
    body: dict[str, Any]


def registry_path(raw: RawArm, group: str, name: str) -> str:
    sub = raw.server.subscription_id
    provider = "providers/Microsoft.ContainerRegistry/registries"
    return f"/subscriptions/{sub}/resourceGroups/{group}/{provider}/{name}"


def unique_name(prefix: str = "reg") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def create_registry(
    raw: RawArm, group: str, name: str | None = None, *, sku: str = "Premium", **properties: Any
) -> TestRegistry:
    """PUT a registry and return it (``properties`` go into ``properties`` as given)."""
    name = name or unique_name()
    response = raw.request(
        "PUT",
        registry_path(raw, group, name),
        api_version=API,
        json={"location": "westus", "sku": {"name": sku}, "properties": properties},
    )
    assert response.status_code in (200, 201), response.text
    body = response.json()
    return TestRegistry(body["id"], body["name"], body["properties"]["loginServer"], body)


def update_registry(raw: RawArm, registry: TestRegistry, **properties: Any) -> dict[str, Any]:
    response = raw.request("PATCH", registry.id, api_version=API, json={"properties": properties})
    assert response.status_code == 200, response.text
    return dict(response.json())


def admin_password(raw: RawArm, registry: TestRegistry) -> str:
    response = raw.request("POST", f"{registry.id}/listCredentials", api_version=API)
    assert response.status_code == 200, response.text
    return str(response.json()["passwords"][0]["value"])


def cert_dir(ca_path: str, where: Path) -> Path:
    """A containers-style certificate directory (``ca.crt``) for skopeo/podman ``--cert-dir``."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca_path, where / "ca.crt")
    return where


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout, check=False)
