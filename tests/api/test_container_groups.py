"""Container groups through the official SDK (azure-mgmt-containerinstance 10.1.0) against the
session server: real runc containers from busybox images pushed with skopeo to a moorage
registry, pulled by the platform through the registry's firewall, RBAC and trusted-services
bypass.

The PUT-time checks answer synchronously with ACI's 400 ``InaccessibleImage`` (the SDK's
``e.error``) and name the cause in ``additionalInfo``; a healthy group runs, logs and serves its
published port on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ContainerGroupIdentity,
    ContainerPort,
    EnvironmentVariable,
    GitRepoVolume,
    ImageRegistryCredential,
    InitContainerDefinition,
    IpAddress,
    Port,
    ResourceRequests,
    ResourceRequirements,
    UserAssignedIdentities,
    Volume,
    VolumeMount,
)

from moorage.instances.access import DIAGNOSIS_TYPE
from tests.api.conftest import RawArm, credential_for, fetch_token, trust
from tests.api.registry_http import Principal, assign_role, basic, create_principal, delete_principal
from tests.api.registry_support import TestRegistry as Registry
from tests.api.registry_support import (
    admin_password,
    cert_dir,
    create_registry,
    skopeo,
    unique_name,
    update_registry,
)
from tests.conftest import sdk_kwargs
from tests.images import busybox_image, write_layout
from tests.runtime_support import runc_unavailable
from tests.server import RunningServer

_F = TypeVar("_F", bound=Callable[..., Any])


def runs_containers(test: _F) -> _F:
    """Marks a test that runs containers: it needs root, runc and conmon (the PUT-time checks do
    not: nothing runs when they fail)."""
    unavailable = runc_unavailable()
    marked: _F = pytest.mark.root(pytest.mark.skipif(unavailable is not None, reason=str(unavailable))(test))
    return marked


MI_API = "2023-01-31"
PAGE = b"hello from a container group\n"
# Runs until stopped, and stops at once on SIGTERM (PID 1 ignores signals it has no handler for,
# so a plain sleep would make every stop wait for the whole grace period).
IDLE = "trap 'exit 0' TERM; sleep 3600 & wait"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Setup:
    group: str
    registry: Registry
    admin: str  # admin password
    identity: str  # a user-assigned identity with AcrPull on the registry
    stranger: str  # a user-assigned identity without any role
    puller: Principal  # a service principal with AcrPull on the registry

    @property
    def login(self) -> str:
        return self.registry.login_server


def _identity(raw: RawArm, group: str, name: str) -> tuple[str, str]:
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{group}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
    response = raw.request("PUT", path, api_version=MI_API, json={"location": "westus"})
    assert response.status_code in (200, 201), response.text
    body = response.json()
    return body["id"], body["properties"]["principalId"]


def _push(
    server: RunningServer, setup_dir: Path, creds: str, repo: str, *, login: str, files: dict[str, bytes]
) -> None:
    layout = write_layout(setup_dir / repo, "v1", busybox_image(files))
    certs = cert_dir(server.ca_path, setup_dir / "certs")
    result = skopeo(
        "copy",
        "--dest-cert-dir",
        str(certs),
        "--dest-creds",
        creds,
        f"oci:{layout}:v1",
        f"docker://{login}/{repo}:v1",
    )
    assert result.returncode == 0, result.stderr


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
    """A resource group; a Premium registry (admin enabled) with ``web:v1`` and ``gone:v1``; a
    user-assigned identity with AcrPull, one without; a service principal with AcrPull."""
    name = f"rg-aci-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{name}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    registry = create_registry(raw, name, unique_name("aci"), adminUserEnabled=True)
    password = admin_password(raw, registry)
    where = tmp_path_factory.mktemp("aci")
    creds = f"{registry.name}:{password}"
    _push(server, where, creds, "web", login=registry.login_server, files={"www/index.html": PAGE})
    _push(server, where, creds, "gone", login=registry.login_server, files={"www/index.html": b"soon gone\n"})
    identity, principal = _identity(raw, name, "puller")
    assign_role(raw, registry.id, "AcrPull", principal)
    stranger, _ = _identity(raw, name, "stranger")
    sp = create_principal(raw, "aci-puller")
    assign_role(raw, registry.id, "AcrPull", sp.object_id)
    yield Setup(name, registry, password, identity, stranger, sp)
    delete_principal(raw, sp)
    raw.request("DELETE", rg_path)


def firewall(raw: RawArm, setup: Setup, default: str = "Deny", bypass: str = "AzureServices") -> None:
    update_registry(
        raw,
        setup.registry,
        networkRuleSet={"defaultAction": default, "ipRules": []},
        networkRuleBypassOptions=bypass,
    )


def container(
    image: str,
    *,
    name: str = "main",
    command: list[str] | None = None,
    ports: tuple[int, ...] = (),
    env: list[EnvironmentVariable] | None = None,
    mounts: list[VolumeMount] | None = None,
) -> Container:
    return Container(
        name=name,
        image=image,
        command=command,
        ports=[ContainerPort(port=p) for p in ports] or None,
        environment_variables=env,
        volume_mounts=mounts,
        resources=ResourceRequirements(requests=ResourceRequests(memory_in_gb=0.5, cpu=0.5)),
    )


def group_of(
    *containers: Container,
    identities: tuple[str, ...] = (),
    credentials: list[ImageRegistryCredential] | None = None,
    restart: str = "Always",
    ports: tuple[int, ...] = (),
    label: str | None = None,
    volumes: list[Volume] | None = None,
) -> ContainerGroup:
    return ContainerGroup(
        location="westus",
        containers=list(containers),
        os_type="Linux",
        restart_policy=restart,
        identity=ContainerGroupIdentity(
            type="UserAssigned", user_assigned_identities={i: UserAssignedIdentities() for i in identities}
        )
        if identities
        else None,
        image_registry_credentials=credentials,
        ip_address=IpAddress(ports=[Port(port=p) for p in ports], type="Public", dns_name_label=label)
        if ports
        else None,
        volumes=volumes,
    )


def mi_group(setup: Setup, image: str, identity: str | None = None, **kw: Any) -> ContainerGroup:
    uami = identity or setup.identity
    return group_of(
        container(image, **kw),
        identities=(uami,),
        credentials=[ImageRegistryCredential(server=setup.login, identity=uami)],
    )


def rejected(
    aci: ContainerInstanceManagementClient, setup: Setup, name: str, group: ContainerGroup
) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as info:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
    assert info.value.status_code == 400, info.value
    with pytest.raises(ResourceNotFoundError):  # nothing was created
        aci.container_groups.get(setup.group, name)
    return info.value


def cause(error: HttpResponseError) -> dict[str, Any]:
    assert error.error is not None
    infos = [i for i in error.error.additional_info if i.type == DIAGNOSIS_TYPE]
    assert len(infos) == 1, error.error.additional_info
    return dict(infos[0].info)


def inaccessible(error: HttpResponseError, image: str, group: str) -> None:
    assert error.error is not None
    assert error.error.code == "InaccessibleImage"
    assert error.error.message == (
        f"The image '{image}' in container group '{group}' is not accessible. Please check the image and "
        "registry credential."
    )


def eventually(probe: Callable[[], _T | None], timeout: float = 20.0, what: str = "condition") -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    return random.randint(20000, 40000)


# -- PUT-time checks: synchronous 400, nothing created ------------------------------------------------


def test_wrong_service_principal_password_is_credentials_rejected(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Allow")
    image = f"{setup.login}/web:v1"
    group = group_of(
        container(image),
        credentials=[
            ImageRegistryCredential(server=setup.login, username=setup.puller.app_id, password="wrong")
        ],
    )
    error = rejected(aci, setup, "cg-wrong-password", group)
    inaccessible(error, image, "cg-wrong-password")
    found = cause(error)
    assert found["cause"] == "CredentialsRejected"
    assert found["evidence"]["credentialKind"] == "servicePrincipal"
    assert "wrong" not in str(found)


def test_service_principal_behind_the_firewall_is_blocked(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny")
    image = f"{setup.login}/web:v1"
    group = group_of(
        container(image),
        credentials=[
            ImageRegistryCredential(
                server=setup.login, username=setup.puller.app_id, password=setup.puller.secret
            )
        ],
    )
    error = rejected(aci, setup, "cg-sp-firewall", group)
    inaccessible(error, image, "cg-sp-firewall")
    found = cause(error)
    assert found["cause"] == "FirewallBlocksPlatform"
    assert found["evidence"]["registryCode"] == "DENIED"
    assert "is not allowed access" in found["evidence"]["registryMessage"]


def test_identity_without_acr_pull_is_missing_role(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    image = f"{setup.login}/web:v1"
    error = rejected(aci, setup, "cg-no-role", mi_group(setup, image, setup.stranger))
    inaccessible(error, image, "cg-no-role")
    assert cause(error)["cause"] == "MissingRole"


def test_identity_behind_a_firewall_without_bypass(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny", bypass="None")
    image = f"{setup.login}/web:v1"
    error = rejected(aci, setup, "cg-no-bypass", mi_group(setup, image))
    inaccessible(error, image, "cg-no-bypass")
    assert cause(error)["cause"] == "FirewallBypassDisabled"


def test_registry_identity_must_be_a_group_identity(
    aci: ContainerInstanceManagementClient, setup: Setup
) -> None:
    group = group_of(
        container(f"{setup.login}/web:v1"),
        identities=(setup.stranger,),
        credentials=[ImageRegistryCredential(server=setup.login, identity=setup.identity)],
    )
    error = rejected(aci, setup, "cg-unlisted", group)
    assert error.error is not None
    assert error.error.code == "InvalidImageRegistryIdentity"


def test_username_and_identity_together_are_ambiguous(
    aci: ContainerInstanceManagementClient, setup: Setup
) -> None:
    group = group_of(
        container(f"{setup.login}/web:v1"),
        identities=(setup.identity,),
        credentials=[
            ImageRegistryCredential(
                server=setup.login, identity=setup.identity, username="someone", password="x"
            )
        ],
    )
    error = rejected(aci, setup, "cg-ambiguous", group)
    assert error.error is not None
    assert error.error.code == "AmbiguousImageResitryCredentialType"


def test_missing_tag_is_tag_not_found(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    image = f"{setup.login}/web:nope"
    error = rejected(aci, setup, "cg-no-tag", mi_group(setup, image))
    inaccessible(error, image, "cg-no-tag")
    assert cause(error)["cause"] == "TagNotFound"


def test_missing_user_assigned_identity_is_refused(
    aci: ContainerInstanceManagementClient, setup: Setup
) -> None:
    ghost = setup.identity.rsplit("/", 1)[0] + "/ghost"
    error = rejected(aci, setup, "cg-ghost", mi_group(setup, f"{setup.login}/web:v1", ghost))
    assert error.error is not None
    assert error.error.code == "FailedIdentityOperation"


# -- running groups ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup) -> Iterator[tuple[str, int]]:
    """Scenario 3: a managed-identity pull through the firewall's trusted-services bypass; busybox
    httpd serves the image's page on a published port."""
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    port = free_port()
    name = "cg-web"
    group = mi_group(
        setup,
        f"{setup.login}/web:v1",
        command=["/bin/sh", "-c", f"echo hello from web; exec httpd -f -p {port} -h /www"],
        ports=(port,),
    )
    group.ip_address = IpAddress(ports=[Port(port=port)], type="Public", dns_name_label="cgweb-label")
    result = aci.container_groups.begin_create_or_update(setup.group, name, group).result()
    assert result.provisioning_state == "Succeeded"
    yield name, port
    aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_managed_identity_with_bypass_runs(
    aci: ContainerInstanceManagementClient, setup: Setup, web: tuple[str, int]
) -> None:
    name, _ = web
    group = aci.container_groups.get(setup.group, name)
    assert group.provisioning_state == "Succeeded"
    assert group.instance_view.state == "Running"
    view = group.containers[0].instance_view
    assert view.current_state.state == "Running"
    assert view.restart_count == 0
    names = [e.name for e in view.events]
    assert names[:4] == ["Pulling", "Pulled", "Created", "Started"]
    assert view.events[0].message == f'pulling image "{setup.login}/web:v1"'
    assert all(e.count == 1 and e.first_timestamp for e in view.events)


@runs_containers
def test_logs_show_the_output(
    aci: ContainerInstanceManagementClient, setup: Setup, web: tuple[str, int]
) -> None:
    name, _ = web
    logs = eventually(
        lambda: (
            found
            if "hello from web"
            in (found := aci.containers.list_logs(setup.group, name, "main").content or "")
            else None
        ),
        what="the container's output",
    )
    assert logs.splitlines()[0] == "hello from web"
    stamped = aci.containers.list_logs(setup.group, name, "main", timestamps=True).content or ""
    assert stamped.split(" ", 1)[1].startswith("hello from web")
    assert stamped[:4].isdigit()


@runs_containers
def test_published_port_answers_from_the_host(setup: Setup, web: tuple[str, int]) -> None:
    _, port = web

    def fetch() -> bytes | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=2).content
        except httpx.HTTPError:
            return None

    assert eventually(fetch, what="httpd") == PAGE


@runs_containers
def test_get_reports_address_and_fqdn(
    aci: ContainerInstanceManagementClient, setup: Setup, web: tuple[str, int]
) -> None:
    name, port = web
    group = aci.container_groups.get(setup.group, name)
    assert group.ip_address.ip
    assert group.ip_address.ip != "127.0.0.1"
    assert group.ip_address.fqdn == "cgweb-label.westus.azurecontainer.io"
    assert [(p.port, p.protocol) for p in group.ip_address.ports] == [(port, "TCP")]
    assert group.identity.type == "UserAssigned"
    entry = group.identity.user_assigned_identities[setup.identity]
    assert entry.principal_id
    assert entry.client_id


@runs_containers
def test_list_has_no_instance_view(
    aci: ContainerInstanceManagementClient, setup: Setup, web: tuple[str, int]
) -> None:
    name, _ = web
    by_group = {g.name: g for g in aci.container_groups.list_by_resource_group(setup.group)}
    assert by_group[name].instance_view is None
    assert by_group[name].containers[0].instance_view is None
    assert name in {g.name for g in aci.container_groups.list()}


@runs_containers
def test_secrets_are_never_returned(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Allow")
    name = "cg-secrets"
    group = group_of(
        container(
            f"{setup.login}/web:v1",
            command=["/bin/sh", "-c", 'echo "token=$TOKEN"; sleep 3600'],
            env=[
                EnvironmentVariable(name="PLAIN", value="visible"),
                EnvironmentVariable(name="TOKEN", secure_value="s3cr3t-value"),
            ],
        ),
        credentials=[
            ImageRegistryCredential(server=setup.login, username=setup.registry.name, password=setup.admin)
        ],
        restart="Never",
    )
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        scope = setup.registry.id.split("/providers/")[0]
        path = f"{scope}/providers/Microsoft.ContainerInstance/containerGroups/{name}"
        bodies = [
            raw.request("GET", path, api_version="2023-05-01").text,
            raw.request("GET", path.rsplit("/", 1)[0], api_version="2023-05-01").text,
        ]
        for text in bodies:
            assert "s3cr3t-value" not in text
            assert setup.admin not in text
        got = aci.container_groups.get(setup.group, name)
        assert got.image_registry_credentials[0].password is None
        assert got.image_registry_credentials[0].username == setup.registry.name
        env = {e.name: e for e in got.containers[0].environment_variables}
        assert env["PLAIN"].value == "visible"
        assert env["TOKEN"].secure_value is None
        # ... yet the process got the value.
        logs = eventually(
            lambda: (
                t
                if "token=" in (t := aci.containers.list_logs(setup.group, name, "main").content or "")
                else None
            )
        )
        assert "token=s3cr3t-value" in logs
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_restart_policy_never_with_a_failing_container_fails(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    name = "cg-exit3"
    group = mi_group(setup, f"{setup.login}/web:v1", command=["/bin/sh", "-c", "echo bye; exit 3"])
    group.restart_policy = "Never"
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        final = eventually(
            lambda: (
                g
                if (g := aci.container_groups.get(setup.group, name)).instance_view.state != "Running"
                else None
            ),
            what="the group to end",
        )
        assert final.instance_view.state == "Failed"
        assert final.provisioning_state == "Succeeded"
        current = final.containers[0].instance_view.current_state
        assert (current.state, current.exit_code, current.detail_status) == ("Terminated", 3, "Error")
        assert aci.containers.list_logs(setup.group, name, "main").content == "bye\n"
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_restart_policy_always_restarts_with_back_off(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    name = "cg-crash"
    group = mi_group(setup, f"{setup.login}/web:v1", command=["/bin/sh", "-c", "echo crash; exit 1"])
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        view = eventually(
            lambda: (
                v
                if (
                    v := aci.container_groups.get(setup.group, name).containers[0].instance_view
                ).restart_count
                >= 1
                else None
            ),
            what="a restart",
        )
        assert "BackOff" in [e.name for e in view.events]
        assert view.previous_state.state == "Terminated"
        assert view.previous_state.exit_code == 1
        assert aci.container_groups.get(setup.group, name).instance_view.state == "Running"
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_logs_tail(aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    name = "cg-tail"
    group = mi_group(
        setup,
        f"{setup.login}/web:v1",
        command=["/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 3600"],
    )
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        eventually(
            lambda: (
                True
                if "line5" in (aci.containers.list_logs(setup.group, name, "main").content or "")
                else None
            )
        )
        assert aci.containers.list_logs(setup.group, name, "main", tail=2).content == "line4\nline5\n"
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


def _netns(prefix: str) -> set[str]:
    netns = Path("/run/netns")
    return {p.name for p in netns.iterdir() if p.name.startswith(f"{prefix}-")} if netns.is_dir() else set()


def _nft(prefix: str) -> str:
    return subprocess.run(
        ["nft", "list", "table", "ip", prefix], capture_output=True, text=True, check=False
    ).stdout


def _runc(prefix: str) -> str:
    runc = shutil.which("runc") or "/usr/sbin/runc"
    listing = subprocess.run(
        [runc, "--root", "/run/moorage/runc", "list", "-q"], capture_output=True, text=True, check=False
    )
    return "\n".join(line for line in listing.stdout.splitlines() if line.startswith(f"{prefix}-"))


@runs_containers
def test_delete_leaves_no_network_or_containers(
    aci: ContainerInstanceManagementClient, raw: RawArm, server: RunningServer, setup: Setup
) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    prefix = server.runtime_prefix
    name = "cg-delete"
    port = free_port()
    before_netns = _netns(prefix)
    group = mi_group(
        setup,
        f"{setup.login}/web:v1",
        command=["/bin/sh", "-c", f"exec httpd -f -p {port} -h /www"],
        ports=(port,),
    )
    group.ip_address = IpAddress(ports=[Port(port=port)], type="Public")
    aci.container_groups.begin_create_or_update(setup.group, name, group).result()
    created = _netns(prefix) - before_netns
    assert len(created) == 1
    sandbox = next(iter(created))[len(prefix) + 1 :]
    assert f"{port}" in _nft(prefix)
    assert sandbox in _runc(prefix)

    deleted = aci.container_groups.begin_delete(setup.group, name).result()
    assert deleted.name == name
    assert _netns(prefix) == before_netns
    assert f"{port}" not in _nft(prefix)
    assert sandbox not in _runc(prefix)
    with pytest.raises(ResourceNotFoundError):
        aci.container_groups.get(setup.group, name)
    # Deleting again is a no-op (204).
    aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_stop_and_start(aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    name = "cg-stop"
    group = mi_group(
        setup,
        f"{setup.login}/web:v1",
        command=["/bin/sh", "-c", "trap 'exit 0' TERM; echo up; while true; do sleep 1; done"],
    )
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        aci.container_groups.stop(setup.group, name)
        stopped = aci.container_groups.get(setup.group, name)
        assert stopped.instance_view.state == "Stopped"
        assert stopped.containers[0].instance_view.current_state.state == "Terminated"
        aci.container_groups.begin_start(setup.group, name).result()
        started = aci.container_groups.get(setup.group, name)
        assert started.instance_view.state == "Running"
        assert started.containers[0].instance_view.current_state.state == "Running"
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_restart_after_the_tag_was_deleted_is_inaccessible(
    aci: ContainerInstanceManagementClient, raw: RawArm, server: RunningServer, setup: Setup
) -> None:
    """Scenario 9: restart re-validates the image; the deleted tag makes it InaccessibleImage."""
    firewall(raw, setup, default="Allow")
    name = "cg-gone"
    image = f"{setup.login}/gone:v1"
    group = mi_group(setup, image, command=["/bin/sh", "-c", IDLE])
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        aci.container_groups.begin_restart(setup.group, name).result()  # fine while the tag exists
        assert aci.container_groups.get(setup.group, name).instance_view.state == "Running"
        with httpx.Client(base_url=f"https://{setup.login}", verify=trust(server)) as registry:
            deleted = registry.delete(
                "/acr/v1/gone/_tags/v1", headers=basic(setup.registry.name, setup.admin)
            )
        assert deleted.status_code == 202, deleted.text
        with pytest.raises(HttpResponseError) as info:
            aci.container_groups.begin_restart(setup.group, name).result()
        inaccessible(info.value, image, name)
        assert cause(info.value)["cause"] in ("TagNotFound", "RepositoryNotFound")
        # The running containers are left alone.
        assert aci.container_groups.get(setup.group, name).instance_view.state == "Running"
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


# -- raw ARM shapes ------------------------------------------------------------------------------------


@runs_containers
def test_put_answers_201_with_async_operation_then_200(raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Allow")
    scope = setup.registry.id.split("/providers/")[0]
    path = f"{scope}/providers/Microsoft.ContainerInstance/containerGroups/cg-raw"
    body = {
        "location": "westus",
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "main",
                    "properties": {
                        "image": f"{setup.login}/web:v1",
                        "command": ["/bin/sh", "-c", IDLE],
                        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                    },
                }
            ],
            "imageRegistryCredentials": [
                {"server": setup.login, "username": setup.registry.name, "password": setup.admin}
            ],
        },
    }
    try:
        created = raw.request("PUT", path, api_version="2023-05-01", json=body)
        assert created.status_code == 201, created.text
        assert created.headers["Retry-After"] == "1"
        status_url = created.headers["Azure-AsyncOperation"]
        assert "/providers/Microsoft.ContainerInstance/locations/westus/" in status_url
        assert created.json()["properties"]["provisioningState"] in ("Pending", "Creating", "Succeeded")
        assert created.json()["properties"]["imageRegistryCredentials"][0]["password"] is None
        status = eventually(
            lambda: (
                s
                if (s := raw.http.get(status_url, headers={"Authorization": f"Bearer {raw.token}"}).json())[
                    "status"
                ]
                != "InProgress"
                else None
            )
        )
        assert status["status"] == "Succeeded"
        # The same body again changes nothing: 200 at once, no operation.
        again = raw.request("PUT", path, api_version="2023-05-01", json=body)
        assert again.status_code == 200, again.text
        assert "Azure-AsyncOperation" not in again.headers
        assert again.json()["properties"]["provisioningState"] == "Succeeded"
        # A changed container is an update with an operation.
        body["properties"]["containers"][0]["properties"]["command"] = [
            "/bin/sh",
            "-c",
            "echo changed; " + IDLE,
        ]
        changed = raw.request("PUT", path, api_version="2023-05-01", json=body)
        assert changed.status_code == 200, changed.text
        assert "Azure-AsyncOperation" in changed.headers
        patched = raw.request("PATCH", path, api_version="2023-05-01", json={"tags": {"team": "a"}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["tags"] == {"team": "a"}
    finally:
        deleted = raw.request("DELETE", path, api_version="2023-05-01")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["name"] == "cg-raw"
    assert raw.request("DELETE", path, api_version="2023-05-01").status_code == 204


# -- control-plane restart -----------------------------------------------------------------------------


def _runc_pid(prefix: str, container_id: str) -> int:
    state = subprocess.run(
        ["/usr/sbin/runc", "--root", "/run/moorage/runc", "state", f"{prefix}-{container_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(state.stdout)["pid"])


@runs_containers
def test_groups_survive_a_control_plane_restart(fresh_server: RunningServer, tmp_path: Path) -> None:
    """The container keeps running across a restart of the server, and the restarted server
    supervises it again: a later crash is restarted by the policy."""
    server = fresh_server
    rg = "rg-survive"
    raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with raw.http:
        rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}"
        assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code == 201
        registry = create_registry(raw, rg, unique_name("survive"), adminUserEnabled=True)
        password = admin_password(raw, registry)
    _push(server, tmp_path, f"{registry.name}:{password}", "web", login=registry.login_server, files={})
    login = registry.login_server
    group = group_of(
        container(f"{login}/web:v1", command=["/bin/sh", "-c", "echo up; sleep 3600"]),
        credentials=[ImageRegistryCredential(server=login, username=registry.name, password=password)],
    )

    @contextlib.contextmanager
    def client() -> Iterator[ContainerInstanceManagementClient]:
        with (
            credential_for(server, server.client_id, server.client_secret) as credential,
            ContainerInstanceManagementClient(
                credential, server.subscription_id, **sdk_kwargs(server)
            ) as aci,
        ):
            yield aci

    with client() as aci:
        aci.container_groups.begin_create_or_update(rg, "cg-survive", group).result()
        before = aci.container_groups.get(rg, "cg-survive").containers[0].instance_view
    container_id = next(e.message for e in before.events if e.name == "Started").rsplit(" ", 1)[1]
    pid = _runc_pid(server.runtime_prefix, container_id)

    server.restart()

    with client() as aci:
        after = aci.container_groups.get(rg, "cg-survive")
        view = after.containers[0].instance_view
        assert after.instance_view.state == "Running"
        assert (view.restart_count, view.current_state.start_time) == (0, before.current_state.start_time)
        assert _runc_pid(server.runtime_prefix, container_id) == pid
        assert aci.containers.list_logs(rg, "cg-survive", "main").content == "up\n"
        os.kill(pid, signal.SIGKILL)  # a crash, seen by the new server's watcher
        restarted = eventually(
            lambda: (
                v
                if (v := aci.container_groups.get(rg, "cg-survive").containers[0].instance_view).restart_count
                == 1
                and v.current_state.state == "Running"
                else None
            ),
            what="the policy to restart the container",
        )
        assert restarted.previous_state.exit_code == 128 + signal.SIGKILL
        aci.container_groups.begin_delete(rg, "cg-survive").result()


# -- volumes and init containers -----------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[str]:
    """A repository (``hello.txt``) served over git's dumb HTTP protocol; yields its URL."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "hello.txt").write_text("from git\n")
    git = [
        "git",
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.com",
        "-c",
        "init.defaultBranch=main",
    ]
    for args in (["init", "-q"], ["add", "hello.txt"], ["commit", "-q", "-m", "first"]):
        subprocess.run([*git, *args], cwd=source, check=True)
    served = tmp_path / "served"
    subprocess.run([*git, "clone", "-q", "--bare", str(source), str(served / "repo.git")], check=True)
    subprocess.run([*git, "update-server-info"], cwd=served / "repo.git", check=True)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/repo.git"
    httpd.shutdown()
    httpd.server_close()


@runs_containers
def test_volumes_and_init_containers(
    aci: ContainerInstanceManagementClient, raw: RawArm, setup: Setup, git_server: str
) -> None:
    """An init container fills an emptyDir the main container reads; a secret volume and a
    gitRepo volume (cloned by the platform) are mounted too."""
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    image = f"{setup.login}/web:v1"
    name = "cg-volumes"
    group = mi_group(
        setup,
        image,
        command=["/bin/sh", "-c", "cat /shared/note /secret/key.txt /src/hello.txt; sleep 3600"],
        mounts=[
            VolumeMount(name="shared", mount_path="/shared"),
            VolumeMount(name="secrets", mount_path="/secret"),
            VolumeMount(name="source", mount_path="/src", read_only=True),
        ],
    )
    group.init_containers = [
        InitContainerDefinition(
            name="prepare",
            image=image,
            command=["/bin/sh", "-c", "echo from init > /shared/note"],
            volume_mounts=[VolumeMount(name="shared", mount_path="/shared")],
        )
    ]
    group.volumes = [
        Volume(name="shared", empty_dir={}),
        Volume(name="secrets", secret={"key.txt": base64.b64encode(b"from a secret\n").decode()}),
        Volume(name="source", git_repo=GitRepoVolume(repository=git_server, directory=".")),
    ]
    try:
        aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        logs = eventually(
            lambda: (
                t
                if "git" in (t := aci.containers.list_logs(setup.group, name, "main").content or "")
                else None
            ),
            what="the main container's output",
        )
        assert logs == "from init\nfrom a secret\nfrom git\n"
        got = aci.container_groups.get(setup.group, name)
        init = got.init_containers[0].instance_view
        assert (init.current_state.state, init.current_state.exit_code) == ("Terminated", 0)
        secret = next(v for v in got.volumes if v.name == "secrets").secret
        assert secret == {"key.txt": None}
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()


@runs_containers
def test_deleting_the_resource_group_removes_its_container_groups(
    aci: ContainerInstanceManagementClient, raw: RawArm, server: RunningServer, setup: Setup
) -> None:
    firewall(raw, setup, default="Allow")
    rg = f"rg-aci-gone-{uuid.uuid4().hex[:6]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code == 201
    before = _netns(server.runtime_prefix)
    group = group_of(
        container(f"{setup.login}/web:v1", command=["/bin/sh", "-c", IDLE]),
        credentials=[
            ImageRegistryCredential(server=setup.login, username=setup.registry.name, password=setup.admin)
        ],
    )
    aci.container_groups.begin_create_or_update(rg, "cg-in-rg", group).result()
    assert len(_netns(server.runtime_prefix) - before) == 1
    deleting = raw.request("DELETE", rg_path)
    assert deleting.status_code == 202, deleting.text
    eventually(
        lambda: True if raw.request("GET", rg_path).status_code == 404 else None, what="the group's deletion"
    )
    assert _netns(server.runtime_prefix) == before
    assert "cg-in-rg" not in {g.name for g in aci.container_groups.list()}


@runs_containers
def test_system_assigned_identity_gets_a_principal(
    aci: ContainerInstanceManagementClient, raw: RawArm, server: RunningServer, setup: Setup
) -> None:
    firewall(raw, setup, default="Allow")
    name = "cg-system"
    group = group_of(
        container(f"{setup.login}/web:v1", command=["/bin/sh", "-c", IDLE]),
        credentials=[
            ImageRegistryCredential(server=setup.login, username=setup.registry.name, password=setup.admin)
        ],
    )
    group.identity = ContainerGroupIdentity(
        type="SystemAssigned, UserAssigned",
        user_assigned_identities={setup.identity: UserAssignedIdentities()},
    )
    try:
        created = aci.container_groups.begin_create_or_update(setup.group, name, group).result()
        identity = created.identity
        assert identity.type == "SystemAssigned, UserAssigned"
        assert identity.tenant_id == server.tenant_id
        uuid.UUID(identity.principal_id)
        assert identity.user_assigned_identities[setup.identity].client_id
        # The same principal on every read.
        assert aci.container_groups.get(setup.group, name).identity.principal_id == identity.principal_id
    finally:
        aci.container_groups.begin_delete(setup.group, name).result()
