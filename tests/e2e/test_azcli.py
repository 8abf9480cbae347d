"""End to end: the real Azure CLI (``az``, installed into ``.venv-az``) against a real moorage server.

The CLI runs exactly as a user would run it against a local cloud (docs: clients.md section 7): an
isolated ``AZURE_CONFIG_DIR``, our CA in ``REQUESTS_CA_BUNDLE``, MSAL instance discovery off, then
``az cloud register`` (with endpoint discovery through ``/metadata/endpoints``), ``az cloud set`` and
``az login --service-principal``. Every later command authenticates with the token the CLI cached.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import RunningServer

pytestmark = pytest.mark.azcli

REPO_ROOT = Path(__file__).resolve().parents[2]
AZ = REPO_ROOT / ".venv-az" / "bin" / "az"
COMMAND_TIMEOUT_S = 120
LOG_TAIL_LINES = 40
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
# The resource the CLI asks tokens for (it sends the scope https://management.core.windows.net//.default).
CLI_MANAGEMENT_RESOURCE = "https://management.core.windows.net/"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class AzResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class AzCli:
    """One Azure CLI profile (its own ``AZURE_CONFIG_DIR``) pointed at ``server``."""

    def __init__(self, server: RunningServer, config_dir: Path) -> None:
        self.server = server
        self.config_dir = config_dir
        self.cloud_name = unique("moorage")
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        # Drop the caller's Azure settings (defaults, credentials, config overrides) so only ours apply.
        env = {k: v for k, v in self.server.env().items() if not k.startswith("AZURE_")}
        env.update(
            {
                "AZURE_CONFIG_DIR": str(self.config_dir),
                "AZURE_CORE_INSTANCE_DISCOVERY": "false",  # else MSAL asks login.microsoftonline.com
                "AZURE_CORE_COLLECT_TELEMETRY": "false",
                "AZURE_CORE_NO_COLOR": "true",
                "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
                "AZURE_CORE_OUTPUT": "json",
                "AZURE_CORE_SURVEY_MESSAGE": "false",
                "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
                # This machine presets REQUESTS_CA_BUNDLE (and CURL_CA_BUNDLE) to the system bundle.
                "REQUESTS_CA_BUNDLE": self.server.ca_path,
            }
        )
        env.pop("CURL_CA_BUNDLE", None)
        # Never send requests for our own server through a proxy the environment may configure.
        bypass = [h for h in env.get("NO_PROXY", env.get("no_proxy", "")).split(",") if h]
        env["NO_PROXY"] = env["no_proxy"] = ",".join([*bypass, "127.0.0.1", "localhost"])
        return env

    # -- running commands ------------------------------------------------------------------------

    def describe(self, result: AzResult, problem: str) -> str:
        command = " ".join(result.args).replace(self.server.client_secret, "***")
        log_tail = "\n".join(self.server.log_text().splitlines()[-LOG_TAIL_LINES:])
        return (
            f"{problem}: az {command} (exit {result.returncode})\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n"
            f"--- server log (last {LOG_TAIL_LINES} lines)\n{log_tail}"
        )

    def run(self, *args: str, expect_success: bool = True) -> AzResult:
        """Run ``az *args``; assert it succeeded (or, with ``expect_success=False``, that it failed)."""
        try:
            completed = subprocess.run(
                [str(AZ), *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            timed_out = AzResult(args, -1, _text(exc.stdout), _text(exc.stderr))
            pytest.fail(self.describe(timed_out, f"timed out after {COMMAND_TIMEOUT_S} s"))
        result = AzResult(args, completed.returncode, completed.stdout, completed.stderr)
        if expect_success:
            assert result.returncode == 0, self.describe(result, "command failed")
        else:
            assert result.returncode != 0, self.describe(result, "command succeeded but should have failed")
        return result

    def json(self, *args: str) -> Any:
        """Run ``az *args -o json`` and parse what it printed."""
        result = self.run(*args, "--output", "json")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            pytest.fail(self.describe(result, "output is not JSON"))

    # -- setup -----------------------------------------------------------------------------------

    def register_cloud(self) -> None:
        # No --skip-endpoint-discovery: the CLI reads {endpoint}/metadata/endpoints to fill in the cloud.
        self.run(
            "cloud",
            "register",
            "--name",
            self.cloud_name,
            "--endpoint-resource-manager",
            f"{self.server.endpoint}/",
        )
        self.run("cloud", "set", "--name", self.cloud_name)

    def login_args(self, secret: str) -> tuple[str, ...]:
        return (
            "login",
            "--service-principal",
            "--username",
            self.server.client_id,
            "--password",
            secret,
            "--tenant",
            self.server.tenant_id,
        )


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def require_az() -> None:
    if not AZ.exists():
        pytest.fail(
            f"The Azure CLI is not installed at {AZ}. Install it with `scripts/bootstrap --az` "
            "(scripts/test does), or deselect these tests with `-m 'not azcli'`."
        )


@dataclass(frozen=True)
class LoggedIn:
    cli: AzCli
    accounts: list[dict[str, Any]]


@pytest.fixture(scope="module")
def logged_in(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> LoggedIn:
    """An isolated CLI profile: local cloud registered and selected, bootstrap principal logged in."""
    require_az()
    cli = AzCli(server, tmp_path_factory.mktemp("azure-config"))
    cli.register_cloud()
    accounts = cli.json(*cli.login_args(server.client_secret))
    return LoggedIn(cli, accounts)


@pytest.fixture(scope="module")
def az(logged_in: LoggedIn) -> AzCli:
    return logged_in.cli


@pytest.fixture
def group(az: AzCli) -> Iterator[dict[str, Any]]:
    """A resource group of the test's own, created and (in the background) deleted with the CLI."""
    created = az.json("group", "create", "--name", unique("azcli-rg"), "--location", "westus")
    yield created
    az.run("group", "delete", "--name", created["name"], "--yes", "--no-wait")


# -- login and cloud ---------------------------------------------------------------------------


def test_login_lists_the_subscription(logged_in: LoggedIn, server: RunningServer) -> None:
    cli = logged_in.cli
    mine = [a for a in logged_in.accounts if a["id"] == server.subscription_id]
    assert len(mine) == 1, logged_in.accounts
    account = mine[0]
    assert account["tenantId"] == server.tenant_id
    assert account["homeTenantId"] == server.tenant_id
    assert account["state"] == "Enabled"
    assert account["isDefault"] is True
    assert account["cloudName"] == cli.cloud_name
    assert account["user"] == {"name": server.client_id, "type": "servicePrincipal"}

    shown = cli.json("account", "show")
    assert shown["id"] == server.subscription_id
    assert shown["tenantId"] == server.tenant_id


def test_cloud_was_filled_in_from_metadata_endpoint(az: AzCli, server: RunningServer) -> None:
    cloud = az.json("cloud", "show", "--name", az.cloud_name)
    assert cloud["isActive"] is True
    endpoints = cloud["endpoints"]
    # Only --endpoint-resource-manager was given: the rest came from /metadata/endpoints.
    assert endpoints["resourceManager"].rstrip("/") == server.endpoint
    assert endpoints["activeDirectory"].rstrip("/") == server.endpoint
    assert endpoints["activeDirectoryResourceId"] == CLI_MANAGEMENT_RESOURCE
    assert endpoints["management"] == CLI_MANAGEMENT_RESOURCE


def test_cli_access_token_is_accepted_by_arm(az: AzCli, server: RunningServer) -> None:
    """What ``AzureCliCredential`` does: take the CLI's token and call ARM with it."""
    token = az.json("account", "get-access-token")
    assert token["tokenType"] == "Bearer"
    assert token["subscription"] == server.subscription_id
    assert token["tenant"] == server.tenant_id
    response = httpx.get(
        f"{server.endpoint}/subscriptions/{server.subscription_id}",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {token['accessToken']}"},
        verify=ssl.create_default_context(cafile=server.ca_path),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["subscriptionId"] == server.subscription_id


def test_wrong_secret_is_rejected(server: RunningServer, tmp_path: Path) -> None:
    require_az()
    cli = AzCli(server, tmp_path / "azure-config")  # its own profile: the module's login stays intact
    cli.register_cloud()
    result = cli.run(*cli.login_args("not-the-secret"), expect_success=False)
    assert "AADSTS7000215" in result.output, cli.describe(result, "no AADSTS7000215 in the output")
    assert cli.json("account", "list") == [], "a failed login must not save an account"


# -- resource groups ---------------------------------------------------------------------------


def test_resource_group_lifecycle(az: AzCli, server: RunningServer) -> None:
    name = unique("azcli-rg")
    expected_id = f"/subscriptions/{server.subscription_id}/resourceGroups/{name}"

    created = az.json("group", "create", "--name", name, "--location", "westus")
    assert created["id"] == expected_id
    assert created["name"] == name
    assert created["location"] == "westus"
    assert created["type"] == "Microsoft.Resources/resourceGroups"
    assert created["properties"]["provisioningState"] == "Succeeded"

    shown = az.json("group", "show", "--name", name)
    assert shown["id"] == expected_id
    assert shown["properties"]["provisioningState"] == "Succeeded"

    listed = az.json("group", "list")
    assert name in {g["name"] for g in listed}

    assert az.json("group", "exists", "--name", name) is True

    updated = az.json("group", "update", "--name", name, "--tags", "a=b")
    assert updated["tags"] == {"a": "b"}
    assert az.json("group", "show", "--name", name)["tags"] == {"a": "b"}

    deleted = az.run("group", "delete", "--name", name, "--yes")
    assert not deleted.stdout.strip(), az.describe(deleted, "delete printed output")
    assert az.json("group", "exists", "--name", name) is False
    assert name not in {g["name"] for g in az.json("group", "list")}


def test_show_missing_group_is_resource_group_not_found(az: AzCli) -> None:
    result = az.run("group", "show", "--name", unique("does-not-exist"), expect_success=False)
    assert "ResourceGroupNotFound" in result.stderr, az.describe(result, "no ResourceGroupNotFound on stderr")


# -- managed identities and role assignments ---------------------------------------------------


def test_user_assigned_identity(az: AzCli, server: RunningServer, group: dict[str, Any]) -> None:
    rg = group["name"]
    created = az.json("identity", "create", "--resource-group", rg, "--name", "id1")
    assert created["id"] == f"{group['id']}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
    assert created["name"] == "id1"
    assert created["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert created["location"] == "westus"  # the group's, as the CLI defaults it
    for key in ("principalId", "clientId", "tenantId"):
        assert GUID.match(created[key]), (key, created[key])
    assert created["tenantId"] == server.tenant_id
    assert created["principalId"] != created["clientId"]

    shown = az.json("identity", "show", "--resource-group", rg, "--name", "id1")
    for key in ("id", "principalId", "clientId", "tenantId"):
        assert shown[key] == created[key], key

    listed = az.json("identity", "list", "--resource-group", rg)
    assert [i["id"] for i in listed] == [created["id"]]

    az.run("identity", "delete", "--resource-group", rg, "--name", "id1")
    missing = az.run("identity", "show", "--resource-group", rg, "--name", "id1", expect_success=False)
    assert "ResourceNotFound" in missing.stderr, az.describe(missing, "no ResourceNotFound on stderr")


def test_role_assignment_for_identity(az: AzCli, group: dict[str, Any]) -> None:
    rg, scope = group["name"], group["id"]
    principal_id = az.json("identity", "create", "--resource-group", rg, "--name", "reader")["principalId"]

    # --assignee would resolve the principal through Microsoft Graph; the object id needs no lookup.
    assignment = az.json(
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        principal_id,
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "Reader",
        "--scope",
        scope,
    )
    assert assignment["principalId"] == principal_id
    assert assignment["principalType"] == "ServicePrincipal"
    assert assignment["scope"] == scope
    assert assignment["roleDefinitionId"].endswith(f"/roleDefinitions/{READER_ROLE_ID}")
    assert (
        assignment["id"] == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{assignment['name']}"
    )

    def assignments_at_scope() -> dict[str, dict[str, Any]]:
        listed = az.json("role", "assignment", "list", "--scope", scope, "--fill-principal-name", "false")
        return {a["id"]: a for a in listed}

    listed = assignments_at_scope()
    assert assignment["id"] in listed, listed
    assert listed[assignment["id"]]["roleDefinitionName"] == "Reader"
    assert listed[assignment["id"]]["principalId"] == principal_id

    az.run("role", "assignment", "delete", "--ids", assignment["id"])
    assert assignment["id"] not in assignments_at_scope()
