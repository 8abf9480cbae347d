"""End to end: ``az container`` (the real Azure CLI from ``.venv-az``) against a real moorage server.

Same isolated profile as ``test_azcli.py`` (own ``AZURE_CONFIG_DIR``, our CA in
``REQUESTS_CA_BUNDLE``, MSAL instance discovery off, local cloud registered from
``/metadata/endpoints``, service-principal login). A private moorage registry holds a busybox test
image (pushed with skopeo); the CLI creates container groups that pull it with a service principal's
credentials or a user-assigned identity, shows them, reads their logs and deletes them. The CLI
waits for the create LRO itself and prints the final body (or the ARM error) as a user sees it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_http import Principal, assign_role, create_principal, delete_principal
from tests.api.registry_support import TestRegistry as Registry
from tests.api.registry_support import admin_password, cert_dir, create_registry, skopeo, unique_name
from tests.e2e.test_azcli import AzCli, AzResult, require_az, unique
from tests.images import busybox_image, write_layout
from tests.runtime_support import runc_unavailable
from tests.server import RunningServer

RUNC_UNAVAILABLE = runc_unavailable()
pytestmark = pytest.mark.azcli

GREETING = "hello from az container"
# Prints, then idles until stopped; exits at once on SIGTERM (PID 1 ignores signals it has no
# handler for, so a plain sleep would make every delete wait for the whole grace period).
SCRIPT = f"echo {GREETING}; echo line two; trap 'exit 0' TERM; sleep 3600 & wait"
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def runs_containers(test: _F) -> _F:
    """Marks a test that runs containers: it needs root, runc and conmon (the PUT-time checks do
    not: nothing runs when they fail)."""
    skip = pytest.mark.skipif(RUNC_UNAVAILABLE is not None, reason=str(RUNC_UNAVAILABLE))
    marked: _F = pytest.mark.root(skip(test))
    return marked


@dataclass(frozen=True)
class Setup:
    group: str
    registry: Registry
    puller: Principal  # a service principal with AcrPull on the registry
    identity: str  # a user-assigned identity with AcrPull on the registry

    @property
    def image(self) -> str:
        return f"{self.registry.login_server}/hello/busybox:v1"


@pytest.fixture(scope="module")
def az(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> AzCli:
    """An isolated CLI profile: local cloud registered and selected, bootstrap principal logged in."""
    require_az()
    cli = AzCli(server, tmp_path_factory.mktemp("azure-config-aci"))
    cli.register_cloud()
    cli.json(*cli.login_args(server.client_secret))
    return cli


@pytest.fixture(scope="module")
def setup(az: AzCli, server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A resource group; a Premium registry with ``hello/busybox:v1``; a service principal and a
    user-assigned identity, both with AcrPull on the registry (the CLI makes what it can)."""
    raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    name = unique("azcli-aci-rg")
    az.json("group", "create", "--name", name, "--location", "westus")
    registry = create_registry(raw, name, unique_name("azcliaci"), adminUserEnabled=True)
    where = tmp_path_factory.mktemp("azcli-aci")
    layout = write_layout(where / "layout", "v1", busybox_image())
    pushed = skopeo(
        "copy",
        "--dest-cert-dir",
        str(cert_dir(server.ca_path, where / "certs")),
        "--dest-creds",
        f"{registry.name}:{admin_password(raw, registry)}",
        f"oci:{layout}:v1",
        f"docker://{registry.login_server}/hello/busybox:v1",
    )
    assert pushed.returncode == 0, pushed.stderr
    puller = create_principal(raw, "azcli-aci-puller")
    assign_role(raw, registry.id, "AcrPull", puller.object_id)
    identity = az.json("identity", "create", "--resource-group", name, "--name", "azcli-puller")
    az.json(
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        identity["principalId"],
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "AcrPull",
        "--scope",
        registry.id,
    )
    yield Setup(name, registry, puller, identity["id"])
    delete_principal(raw, puller)
    az.run("group", "delete", "--name", name, "--yes", "--no-wait")
    raw.http.close()


def create_args(setup: Setup, name: str, *extra: str, script: str = SCRIPT) -> tuple[str, ...]:
    return (
        "container",
        "create",
        "--resource-group",
        setup.group,
        "--name",
        name,
        "--image",
        setup.image,
        "--os-type",
        "Linux",
        "--cpu",
        "0.5",
        "--memory",
        "0.5",
        "--restart-policy",
        "Never",
        "--command-line",
        f'/bin/sh -c "{script}"',
        *extra,
    )


def sp_credentials(setup: Setup, password: str) -> tuple[str, ...]:
    return (
        "--registry-login-server",
        setup.registry.login_server,
        "--registry-username",
        setup.puller.app_id,
        "--registry-password",
        password,
    )


def eventually(probe: Callable[[], _T | None], timeout: float = 30.0, what: str = "condition") -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def logs_with_greeting(az: AzCli, setup: Setup, name: str) -> AzResult:
    def probe() -> AzResult | None:
        result = az.run("container", "logs", "--resource-group", setup.group, "--name", name)
        return result if GREETING in result.stdout else None

    return eventually(probe, what="the container's output in `az container logs`")


def assert_no_secret(az: AzCli, result: AzResult, secret: str) -> None:
    assert secret not in result.output, az.describe(result, "a secret appears in the CLI's output")


def assert_gone(az: AzCli, setup: Setup, name: str) -> None:
    missing = az.run(
        "container", "show", "--resource-group", setup.group, "--name", name, expect_success=False
    )
    assert "ResourceNotFound" in missing.stderr, az.describe(missing, "the group is still there")


# -- service-principal credentials ---------------------------------------------------------------


@runs_containers
def test_create_show_logs_delete_with_service_principal(az: AzCli, setup: Setup) -> None:
    name = f"cg-{uuid.uuid4().hex[:8]}"
    secret = setup.puller.secret

    created_run = az.run(*create_args(setup, name, *sp_credentials(setup, secret)), "--output", "json")
    assert_no_secret(az, created_run, secret)
    created = json.loads(created_run.stdout)
    assert created["name"] == name
    assert created["type"] == "Microsoft.ContainerInstance/containerGroups"
    assert created["provisioningState"] == "Succeeded"
    assert created["osType"] == "Linux"
    assert created["restartPolicy"] == "Never"
    [credential] = created["imageRegistryCredentials"]
    assert credential["server"] == setup.registry.login_server
    assert credential["username"] == setup.puller.app_id
    assert credential["password"] is None
    [container] = created["containers"]
    assert container["image"] == setup.image
    assert container["command"] == ["/bin/sh", "-c", SCRIPT]
    requests = container["resources"]["requests"]
    assert (requests["cpu"], requests["memoryInGb"]) == (0.5, 0.5)

    shown_run = az.run(
        "container", "show", "--resource-group", setup.group, "--name", name, "--output", "json"
    )
    assert_no_secret(az, shown_run, secret)
    shown = json.loads(shown_run.stdout)
    assert shown["id"] == created["id"]
    assert shown["instanceView"]["state"] in ("Running", "Succeeded")
    view = shown["containers"][0]["instanceView"]
    assert view["currentState"]["state"] in ("Running", "Terminated")
    assert [e["name"] for e in view["events"]][:4] == ["Pulling", "Pulled", "Created", "Started"]

    logs = logs_with_greeting(az, setup, name)
    assert logs.stdout.splitlines()[:2] == [GREETING, "line two"]

    listed = az.json("container", "list", "--resource-group", setup.group)
    assert name in {g["name"] for g in listed}

    deleted = az.run("container", "delete", "--resource-group", setup.group, "--name", name, "--yes")
    assert_no_secret(az, deleted, secret)
    assert_gone(az, setup, name)


@runs_containers
def test_run_to_completion_then_follow_logs(az: AzCli, setup: Setup) -> None:
    """A group that exits 0 under restart policy Never ends Succeeded; ``logs --follow`` prints
    the output and returns once the CLI sees the group ended (it polls ``instanceView.state``)."""
    name = f"cg-{uuid.uuid4().hex[:8]}"
    script = f"echo {GREETING}; echo done"
    az.json(*create_args(setup, name, *sp_credentials(setup, setup.puller.secret), script=script))

    def ended() -> dict[str, Any] | None:
        shown = az.json("container", "show", "--resource-group", setup.group, "--name", name)
        return shown if shown["instanceView"]["state"] != "Running" else None

    shown = eventually(ended, what="the group to end")
    assert shown["instanceView"]["state"] == "Succeeded"
    current = shown["containers"][0]["instanceView"]["currentState"]
    assert (current["state"], current["exitCode"], current["detailStatus"]) == ("Terminated", 0, "Completed")

    followed = az.run("container", "logs", "--resource-group", setup.group, "--name", name, "--follow")
    assert followed.stdout.splitlines()[:2] == [GREETING, "done"]
    az.run("container", "delete", "--resource-group", setup.group, "--name", name, "--yes")


def test_wrong_password_prints_inaccessible_image(az: AzCli, setup: Setup) -> None:
    name = f"cg-{uuid.uuid4().hex[:8]}"
    wrong = f"not-the-secret-{uuid.uuid4().hex[:6]}"
    failed = az.run(*create_args(setup, name, *sp_credentials(setup, wrong)), expect_success=False)
    assert "InaccessibleImage" in failed.stderr, az.describe(failed, "no InaccessibleImage on stderr")
    expected = (
        f"The image '{setup.image}' in container group '{name}' is not accessible. Please check the "
        "image and registry credential."
    )
    assert expected in failed.stderr, az.describe(failed, "not ACI's message")
    assert_no_secret(az, failed, wrong)
    assert_gone(az, setup, name)  # nothing was created


# -- managed identity ------------------------------------------------------------------------------


@runs_containers
def test_create_with_acr_identity(az: AzCli, setup: Setup) -> None:
    name = f"cg-{uuid.uuid4().hex[:8]}"
    created = az.json(
        *create_args(setup, name),
        "--assign-identity",
        setup.identity,
        "--acr-identity",
        setup.identity,
        "--registry-login-server",
        setup.registry.login_server,
    )
    assert created["provisioningState"] == "Succeeded"
    assert created["identity"]["type"] == "UserAssigned"
    assert list(created["identity"]["userAssignedIdentities"]) == [setup.identity]
    assert created["identity"]["userAssignedIdentities"][setup.identity]["principalId"]
    [credential] = created["imageRegistryCredentials"]
    assert credential["server"] == setup.registry.login_server
    assert credential["identity"] == setup.identity
    assert credential.get("username") is None

    logs = logs_with_greeting(az, setup, name)
    assert logs.stdout.splitlines()[0] == GREETING
    az.run("container", "delete", "--resource-group", setup.group, "--name", name, "--yes")
    assert_gone(az, setup, name)
