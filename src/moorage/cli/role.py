"""``moorage role``: Azure RBAC role assignments and definitions, shaped like ``az role``.

``--assignee`` takes a service principal's or managed identity's appId (clientId) or object id
and is looked up in the directory; ``--assignee-object-id`` skips the lookup (as in az, and as
the fixes moorage prints suggest). ``--role`` is a role name (``AcrPull``), GUID or full id.
JSON output is ARM's body; the table names each role.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from moorage.cli.command import HomeOption, OutputOption, UsageError, emit, run, warn
from moorage.cli.output import Column, OutputFormat, Table
from moorage.client import MoorageClient
from moorage.client.arm import ArmBody, RoleAssignments

app = typer.Typer(help="Role-based access control.", no_args_is_help=True)
assignment_app = typer.Typer(help="Role assignments.", no_args_is_help=True)
definition_app = typer.Typer(help="Role definitions (the built-in roles).", no_args_is_help=True)
app.add_typer(assignment_app, name="assignment")
app.add_typer(definition_app, name="definition")

AssigneeOption = Annotated[
    str | None, typer.Option("--assignee", help="appId/clientId or object id of the principal.")
]
ObjectIdOption = Annotated[
    str | None, typer.Option("--assignee-object-id", help="The principal's object id (no directory lookup).")
]
PrincipalTypeOption = Annotated[
    str,
    typer.Option("--assignee-principal-type", help="principalType with --assignee-object-id."),
]
RoleOption = Annotated[str | None, typer.Option("--role", help="Role name, GUID or id.")]
ScopeOption = Annotated[
    str | None, typer.Option("--scope", help="Scope: a subscription, group or resource id.")
]


def _guid(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def assignment_table(role_names: dict[str, str]) -> Table:
    return Table(
        [
            Column("Principal", "properties.principalId"),
            Column("Role", lambda a: role_names.get(_guid(str(a["properties"]["roleDefinitionId"])), "")),
            Column("Scope", "properties.scope"),
        ]
    )


async def _role_names(client: MoorageClient) -> dict[str, str]:
    return {
        str(d["name"]).lower(): str(d["properties"]["roleName"])
        for d in await RoleAssignments(client).definitions()
    }


async def _principal_id(client: MoorageClient, assignee: str | None, object_id: str | None) -> str | None:
    if object_id:
        return object_id
    if assignee:
        return str((await client.get_service_principal(assignee))["id"])
    return None


@assignment_app.command("create")
def assignment_create(
    *,
    role: Annotated[str, typer.Option("--role", help="Role name, GUID or id.")],
    scope: Annotated[str, typer.Option("--scope", help="Scope: a subscription, group or resource id.")],
    assignee: AssigneeOption = None,
    assignee_object_id: ObjectIdOption = None,
    assignee_principal_type: PrincipalTypeOption = "ServicePrincipal",
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Grant a role to a principal at a scope (az role assignment create)."""
    if bool(assignee) == bool(assignee_object_id):
        raise UsageError("give exactly one of --assignee and --assignee-object-id.")

    async def go(client: MoorageClient) -> tuple[ArmBody, dict[str, str]]:
        assignments = RoleAssignments(client)
        role_id = await assignments.definition_id(role)
        principal = await _principal_id(client, assignee, assignee_object_id)
        created = await assignments.create(scope, role_id, principal or "", assignee_principal_type)
        return created, (await _role_names(client) if output is OutputFormat.TABLE else {})

    created, names = run(home, go)
    emit(created, output, assignment_table(names))


async def _matching(
    client: MoorageClient,
    *,
    assignee: str | None,
    object_id: str | None,
    role: str | None,
    scope: str | None,
    every: bool,
    include_inherited: bool,
) -> list[ArmBody]:
    """Assignments as az lists them: at ``scope`` (default the subscription) only, unless
    ``include_inherited`` (also above it) or ``every`` (everything in the subscription)."""
    assignments = RoleAssignments(client)
    principal = await _principal_id(client, assignee, object_id)
    where = scope or client.sub_path()
    found = await assignments.list(where, at_scope=not every, principal_id=principal)
    if not every and not include_inherited:
        found = [a for a in found if str(a["properties"]["scope"]).lower() == where.rstrip("/").lower()]
    if role:
        wanted = _guid(await assignments.definition_id(role))
        found = [a for a in found if _guid(str(a["properties"]["roleDefinitionId"])) == wanted]
    return found


@assignment_app.command("list")
def assignment_list(
    *,
    assignee: AssigneeOption = None,
    assignee_object_id: ObjectIdOption = None,
    role: RoleOption = None,
    scope: ScopeOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Everything in the subscription, at any scope.")
    ] = False,
    include_inherited: Annotated[
        bool, typer.Option("--include-inherited", help="Also assignments above --scope.")
    ] = False,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """List role assignments (az role assignment list)."""

    async def go(client: MoorageClient) -> tuple[list[ArmBody], dict[str, str]]:
        found = await _matching(
            client,
            assignee=assignee,
            object_id=assignee_object_id,
            role=role,
            scope=scope,
            every=all_,
            include_inherited=include_inherited,
        )
        return found, (await _role_names(client) if output is OutputFormat.TABLE else {})

    found, names = run(home, go)
    emit(found, output, assignment_table(names))


@assignment_app.command("delete")
def assignment_delete(
    *,
    ids: Annotated[list[str] | None, typer.Option("--ids", help="Role assignment ids (repeatable).")] = None,
    assignee: AssigneeOption = None,
    assignee_object_id: ObjectIdOption = None,
    role: RoleOption = None,
    scope: ScopeOption = None,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; delete prints nothing
    home: HomeOption = None,
) -> None:
    """Delete role assignments by id, or those matching --assignee/--role/--scope (az role
    assignment delete); prints nothing."""
    if not (ids or assignee or assignee_object_id or role or scope):
        raise UsageError("give --ids, or at least one of --assignee, --assignee-object-id, --role, --scope.")

    async def go(client: MoorageClient) -> int:
        targets = list(ids or [])
        if not targets:
            found = await _matching(
                client,
                assignee=assignee,
                object_id=assignee_object_id,
                role=role,
                scope=scope,
                every=False,
                include_inherited=False,
            )
            targets = [str(a["id"]) for a in found]
        for target in targets:
            await RoleAssignments(client).delete(target)
        return len(targets)

    if run(home, go) == 0:
        warn("No matched assignments were found to delete.")


@definition_app.command("list")
def definition_list(
    name: Annotated[str | None, typer.Option("--name", help="A role name or GUID.")] = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """List the role definitions (az role definition list)."""

    async def go(client: MoorageClient) -> Any:
        found = await RoleAssignments(client).definitions()
        if name:
            found = [
                d
                for d in found
                if name.lower() in (str(d["name"]).lower(), str(d["properties"]["roleName"]).lower())
            ]
        return found

    table = Table(
        [Column("Name", "properties.roleName"), Column("Id", "name"), Column("Type", "properties.type")]
    )
    emit(run(home, go), output, table)
