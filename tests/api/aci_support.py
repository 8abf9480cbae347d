"""Shared set-up for container-group API tests: a resource group with a private moorage registry
holding a busybox test image, and helpers to run a group to completion through the official SDK."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ImageRegistryCredential,
    ResourceRequests,
    ResourceRequirements,
    SecurityContextDefinition,
)

from tests.api.conftest import RawArm
from tests.api.registry_support import admin_password, cert_dir, create_registry, skopeo, unique_name
from tests.images import busybox_image, write_layout

LOCATION = "westus"


@dataclass(frozen=True)
class PrivateImage:
    """``image`` in a Premium moorage registry of resource group ``group``, pulled with the
    registry's admin credentials."""

    group: str
    login_server: str
    username: str
    password: str

    @property
    def image(self) -> str:
        return f"{self.login_server}/tests/busybox:v1"

    def credentials(self) -> list[ImageRegistryCredential]:
        return [
            ImageRegistryCredential(server=self.login_server, username=self.username, password=self.password)
        ]


@contextmanager
def private_image(raw: RawArm, where: Path, prefix: str) -> Iterator[PrivateImage]:
    """A new resource group holding a registry with the busybox image; all removed afterwards."""
    group = f"rg-{prefix}-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{group}"
    created = raw.request("PUT", rg_path, json={"location": LOCATION})
    assert created.status_code in (200, 201), created.text
    try:
        registry = create_registry(raw, group, unique_name(prefix), adminUserEnabled=True)
        password = admin_password(raw, registry)
        layout = write_layout(where / "layout", "v1", busybox_image())
        pushed = skopeo(
            "copy",
            "--dest-cert-dir",
            str(cert_dir(raw.server.ca_path, where / "certs")),
            "--dest-creds",
            f"{registry.name}:{password}",
            f"oci:{layout}:v1",
            f"docker://{registry.login_server}/tests/busybox:v1",
        )
        assert pushed.returncode == 0, pushed.stderr
        yield PrivateImage(group, registry.login_server, registry.name, password)
    finally:
        raw.request("DELETE", rg_path)


def one_container_group(
    source: PrivateImage,
    command: list[str],
    *,
    security: SecurityContextDefinition | None = None,
    restart: str = "Never",
    location: str = LOCATION,
    cpu: float = 0.5,
) -> ContainerGroup:
    return ContainerGroup(
        location=location,
        os_type="Linux",
        restart_policy=restart,
        image_registry_credentials=source.credentials(),
        containers=[
            Container(
                name="main",
                image=source.image,
                command=command,
                resources=ResourceRequirements(requests=ResourceRequests(memory_in_gb=0.5, cpu=cpu)),
                security_context=security,
            )
        ],
    )


def wait_until_ended(
    aci: ContainerInstanceManagementClient, group: str, name: str, timeout: float = 30.0
) -> Any:
    """The group once its instance view has left ``Running``/``Pending`` (restart policy Never)."""
    deadline = time.monotonic() + timeout
    while True:
        got = aci.container_groups.get(group, name)
        if got.instance_view is not None and got.instance_view.state not in ("Running", "Pending"):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"container group {name} is still {got.instance_view.state}")
        time.sleep(0.2)
