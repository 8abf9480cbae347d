"""``moorage sp create-for-rbac`` and ``moorage role assignment``."""

from __future__ import annotations

import httpx

from tests.api.conftest import fetch_token, trust
from tests.cli.conftest import Cli, unique

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _registry(cli: Cli, group: str) -> str:
    return str(cli.json("acr", "create", "-n", unique("clirbac"), "-g", group, "--sku", "Basic")["id"])


def test_create_for_rbac_has_az_s_shape_and_its_role(cli: Cli, group: str) -> None:
    registry = _registry(cli, group)
    created = cli.json(
        "sp", "create-for-rbac", "--name", "ci-pull", "--role", "AcrPull", "--scopes", registry
    )
    assert set(created) == {"appId", "displayName", "password", "tenant"}
    assert created["displayName"] == "ci-pull"
    assert created["tenant"] == cli.server.tenant_id
    # The credentials work, and the principal holds AcrPull on the registry and nothing more.
    assert fetch_token(cli.server, created["appId"], created["password"])
    found = cli.json("role", "assignment", "list", "--assignee", created["appId"], "--scope", registry)
    assert [a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] for a in found] == [ACR_PULL]
    assert (
        cli.json("role", "assignment", "list", "--assignee", created["appId"]) == []
    )  # none at the subscription
    assert len(cli.json("role", "assignment", "list", "--assignee", created["appId"], "--all")) == 1
    cli.run("sp", "delete", created["appId"])


def test_create_for_rbac_refuses_a_role_without_scopes_or_an_unknown_role(cli: Cli, group: str) -> None:
    assert cli.run("sp", "create-for-rbac", "--role", "Reader", check=False).returncode == 2
    unknown = cli.run(
        "sp",
        "create-for-rbac",
        "--name",
        "nope",
        "--role",
        "NoSuchRole",
        "--scopes",
        cli.subscription,
        check=False,
    )
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("ERROR: (RoleDefinitionDoesNotExist) ")
    assert "nope" not in [p["displayName"] for p in cli.json("sp", "list")]  # nothing was created


def test_role_assignment_create_list_delete(cli: Cli, group: str) -> None:
    sp = cli.json("sp", "create-for-rbac", "--name", "ci-reader")
    scope = f"{cli.subscription}/resourceGroups/{group}"
    created = cli.json(
        "role", "assignment", "create", "--assignee", sp["appId"], "--role", "Reader", "--scope", scope
    )
    principal = created["properties"]["principalId"]
    assert created["properties"]["roleDefinitionId"].endswith(f"/roleDefinitions/{READER}")
    assert created["properties"]["scope"].lower() == scope.lower()
    assert created["properties"]["principalType"] == "ServicePrincipal"
    # The principal can now read the group.
    token = fetch_token(cli.server, sp["appId"], sp["password"])
    response = httpx.get(
        f"{cli.server.endpoint}{scope}",
        params={"api-version": "2024-11-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=trust(cli.server),
    )
    assert response.status_code == 200
    # By object id, by role GUID, and as a table that names the role.
    listed = cli.json(
        "role", "assignment", "list", "--assignee-object-id", principal, "--role", READER, "--scope", scope
    )
    assert [a["id"] for a in listed] == [created["id"]]
    table = cli.run("role", "assignment", "list", "--assignee", sp["appId"], "--scope", scope, "-o", "table")
    assert table.stdout.splitlines()[0].split() == ["Principal", "Role", "Scope"]
    assert table.stdout.splitlines()[2].split()[:2] == [principal, "Reader"]
    duplicate = cli.run(
        "role",
        "assignment",
        "create",
        "--assignee",
        sp["appId"],
        "--role",
        "Reader",
        "--scope",
        scope,
        check=False,
    )
    assert duplicate.returncode == 1
    assert duplicate.stderr.startswith("ERROR: (RoleAssignmentExists) ")
    deleted = cli.run(
        "role", "assignment", "delete", "--assignee", sp["appId"], "--role", "Reader", "--scope", scope
    )
    assert deleted.stdout == ""
    assert cli.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", scope) == []
    nothing = cli.run("role", "assignment", "delete", "--assignee", sp["appId"], "--scope", scope)
    assert "No matched assignments" in nothing.stderr
    cli.run("sp", "delete", sp["appId"])


def test_role_assignment_for_a_managed_identity_and_delete_by_id(cli: Cli, group: str) -> None:
    identity = cli.json("identity", "create", "-n", unique("id-"), "-g", group)
    registry = _registry(cli, group)
    created = cli.json(
        "role", "assignment", "create", "--assignee", identity["properties"]["clientId"], "--role", "AcrPull",
        "--scope", registry,
    )  # fmt: skip
    assert created["properties"]["principalId"] == identity["properties"]["principalId"]
    cli.run("role", "assignment", "delete", "--ids", created["id"])
    assert cli.json("role", "assignment", "list", "--scope", registry) == []


def test_role_assignment_usage_errors(cli: Cli) -> None:
    both = cli.run(
        "role", "assignment", "create", "--role", "Reader", "--scope", cli.subscription,
        "--assignee", "x", "--assignee-object-id", "y", check=False,
    )  # fmt: skip
    assert both.returncode == 2
    assert cli.run("role", "assignment", "delete", check=False).returncode == 2


def test_role_definitions(cli: Cli) -> None:
    found = cli.json("role", "definition", "list", "--name", "AcrPull")
    assert [d["name"] for d in found] == [ACR_PULL]
