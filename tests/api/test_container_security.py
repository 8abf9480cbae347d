"""A container's ``securityContext`` through the official SDK, honoured by real runc containers:
capabilities added and dropped (seen in ``/proc/self/status`` and in what the process may do),
``runAsUser``/``runAsGroup`` (seen by ``id``), ``allowPrivilegeEscalation: false`` (no new
privileges). What this host cannot honour is refused at PUT with a 400 naming the property, and
nothing is created."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    SecurityContextCapabilitiesDefinition,
    SecurityContextDefinition,
)

from moorage.instances.runtime.specs import DEFAULT_CAPABILITIES, capability_mask
from tests.api.aci_support import PrivateImage, one_container_group, private_image, wait_until_ended
from tests.api.conftest import RawArm
from tests.conftest import sdk_kwargs
from tests.runtime_support import runc_unavailable
from tests.server import RunningServer

_F = TypeVar("_F", bound=Callable[..., Any])
RUNC_UNAVAILABLE = runc_unavailable()
# Changing the loopback MTU needs CAP_NET_ADMIN (in the group's own network namespace).
NET_ADMIN_PROBE = "ip link set lo mtu 1300 && echo net-admin-ok || echo net-admin-denied"


def runs_containers(test: _F) -> _F:
    """Marks a test that runs containers: it needs root, runc and conmon."""
    skip = pytest.mark.skipif(RUNC_UNAVAILABLE is not None, reason=str(RUNC_UNAVAILABLE))
    marked: _F = pytest.mark.root(skip(test))
    return marked


@pytest.fixture(scope="module")
def aci(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[ContainerInstanceManagementClient]:
    with ContainerInstanceManagementClient(
        credential, server.subscription_id, **sdk_kwargs(server)
    ) as client:
        yield client


@pytest.fixture(scope="module")
def source(raw: RawArm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateImage]:
    with private_image(raw, tmp_path_factory.mktemp("aci-security"), "sec") as made:
        yield made


def run(
    aci: ContainerInstanceManagementClient,
    source: PrivateImage,
    script: str,
    security: SecurityContextDefinition | None,
) -> tuple[Any, str]:
    """Run ``sh -c script`` to completion in a new group; return the ended group and its logs."""
    name = f"cg-sec-{uuid.uuid4().hex[:8]}"
    group = one_container_group(source, ["/bin/sh", "-c", script], security=security)
    aci.container_groups.begin_create_or_update(source.group, name, group).result()
    try:
        ended = wait_until_ended(aci, source.group, name)
        logs = aci.containers.list_logs(source.group, name, "main").content or ""
        return ended, logs
    finally:
        aci.container_groups.begin_delete(source.group, name).result()


def status_fields(logs: str) -> dict[str, str]:
    """The ``Key:<tab>value`` lines of ``/proc/self/status`` among the logs."""
    fields = (line.split(":\t", 1) for line in logs.splitlines() if ":\t" in line)
    return {key: value.strip() for key, value in fields}


def mask(*caps: str) -> str:
    return f"{capability_mask(caps):016x}"


def capabilities(add: list[str] | None = None, drop: list[str] | None = None) -> SecurityContextDefinition:
    return SecurityContextDefinition(capabilities=SecurityContextCapabilitiesDefinition(add=add, drop=drop))


# -- honoured ------------------------------------------------------------------------------------


@runs_containers
def test_capabilities_drop_and_add_reach_the_process(
    aci: ContainerInstanceManagementClient, source: PrivateImage
) -> None:
    security = capabilities(add=["NET_ADMIN"], drop=["NET_RAW"])
    ended, logs = run(aci, source, f"cat /proc/self/status; {NET_ADMIN_PROBE}", security)
    assert ended.instance_view.state == "Succeeded", logs
    status = status_fields(logs)
    expected = mask(*(DEFAULT_CAPABILITIES - {"NET_RAW"}), "NET_ADMIN")
    assert (status["CapBnd"], status["CapPrm"], status["CapEff"]) == (expected, expected, expected)
    assert "net-admin-ok" in logs
    shown = ended.containers[0].security_context
    assert (shown.capabilities.add, shown.capabilities.drop) == (["NET_ADMIN"], ["NET_RAW"])
    assert shown.privileged is False


@runs_containers
def test_without_a_security_context_the_default_capabilities_apply(
    aci: ContainerInstanceManagementClient, source: PrivateImage
) -> None:
    ended, logs = run(aci, source, f"cat /proc/self/status; {NET_ADMIN_PROBE}", None)
    assert ended.instance_view.state == "Succeeded", logs
    status = status_fields(logs)
    assert (status["CapBnd"], status["CapEff"]) == (mask(*DEFAULT_CAPABILITIES), mask(*DEFAULT_CAPABILITIES))
    assert status["NoNewPrivs"] == "0"
    assert "net-admin-denied" in logs
    assert ended.containers[0].security_context is None


@runs_containers
def test_drop_all_leaves_only_what_is_added(
    aci: ContainerInstanceManagementClient, source: PrivateImage
) -> None:
    ended, logs = run(aci, source, "cat /proc/self/status", capabilities(add=["CHOWN"], drop=["ALL"]))
    assert ended.instance_view.state == "Succeeded", logs
    status = status_fields(logs)
    assert (status["CapBnd"], status["CapEff"]) == (mask("CHOWN"), mask("CHOWN"))


@runs_containers
def test_run_as_user_and_group(aci: ContainerInstanceManagementClient, source: PrivateImage) -> None:
    security = SecurityContextDefinition(run_as_user=1234, run_as_group=5678)
    ended, logs = run(aci, source, "id; cat /proc/self/status", security)
    assert ended.instance_view.state == "Succeeded", logs
    assert logs.splitlines()[0].startswith("uid=1234 gid=5678"), logs
    status = status_fields(logs)
    # A non-root process keeps its capabilities in the bounding set only.
    assert (status["CapBnd"], status["CapEff"]) == (mask(*DEFAULT_CAPABILITIES), mask())
    shown = ended.containers[0].security_context
    assert (shown.run_as_user, shown.run_as_group) == (1234, 5678)


@runs_containers
def test_run_as_group_alone_keeps_the_image_user(
    aci: ContainerInstanceManagementClient, source: PrivateImage
) -> None:
    ended, logs = run(aci, source, "id -u; id -g", SecurityContextDefinition(run_as_group=5678))
    assert ended.instance_view.state == "Succeeded", logs
    assert logs.splitlines() == ["0", "5678"]


@runs_containers
def test_no_privilege_escalation_sets_no_new_privs(
    aci: ContainerInstanceManagementClient, source: PrivateImage
) -> None:
    security = SecurityContextDefinition(allow_privilege_escalation=False)
    ended, logs = run(aci, source, "cat /proc/self/status", security)
    assert ended.instance_view.state == "Succeeded", logs
    assert status_fields(logs)["NoNewPrivs"] == "1"
    assert ended.containers[0].security_context.allow_privilege_escalation is False


# -- refused at PUT ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("security", "code", "target"),
    [
        (SecurityContextDefinition(privileged=True), "UnsupportedFeature", "privileged"),
        (capabilities(add=["SYS_ADMIN"]), "UnsupportedFeature", "capabilities.add[0]"),
        (SecurityContextDefinition(seccomp_profile="e30="), "UnsupportedFeature", "seccompProfile"),
        (capabilities(drop=["NOT_A_CAP"]), "InvalidSecurityContext", "capabilities.drop[0]"),
    ],
)
def test_what_the_host_cannot_honour_is_refused(
    aci: ContainerInstanceManagementClient,
    source: PrivateImage,
    security: SecurityContextDefinition,
    code: str,
    target: str,
) -> None:
    name = f"cg-sec-{uuid.uuid4().hex[:8]}"
    group = one_container_group(source, ["/bin/sh", "-c", "true"], security=security)
    with pytest.raises(HttpResponseError) as info:
        aci.container_groups.begin_create_or_update(source.group, name, group).result()
    assert info.value.status_code == 400
    error = info.value.error
    assert error is not None
    assert error.code == code
    assert error.target == f"properties.containers[0].properties.securityContext.{target}"
    assert f"container group '{name}'" in error.message
    with pytest.raises(ResourceNotFoundError):
        aci.container_groups.get(source.group, name)
