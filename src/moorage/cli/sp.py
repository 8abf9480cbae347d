"""``moorage sp``: service principals of the tenant's directory (``az ad sp``).

``create-for-rbac`` answers in az's shape, ``{appId, displayName, password, tenant}`` — the only
output that ever carries a secret; ``show``/``list`` carry secret hints only.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from moorage.cli.command import HomeOption, OutputOption, UsageError, emit, run
from moorage.cli.output import Column, OutputFormat, Table
from moorage.client import MoorageClient
from moorage.client.arm import RoleAssignments

app = typer.Typer(help="Service principals (Entra applications).", no_args_is_help=True)

PrincipalArgument = Annotated[str, typer.Argument(help="appId or object id")]
PRINCIPAL_TABLE = Table(
    [
        Column("DisplayName", "displayName"),
        Column("AppId", "appId"),
        Column("ObjectId", "id"),
        Column("Type", "servicePrincipalType"),
    ]
)
CREATED_TABLE = Table(
    [
        Column("AppId", "appId"),
        Column("DisplayName", "displayName"),
        Column("Password", "password"),
        Column("Tenant", "tenant"),
    ]
)


def _create(
    home: Any, name: str | None, role: str | None, scopes: list[str] | None, output: OutputFormat
) -> None:
    async def go(client: MoorageClient) -> Any:
        if role and not scopes:
            raise UsageError("--role needs --scopes (the resource ids to grant it on).")
        if scopes and not role:
            raise UsageError("--scopes needs --role.")
        # Resolved first, so an unknown role creates no principal.
        assignments = RoleAssignments(client)
        role_id = await assignments.definition_id(role) if role else None
        created = await client.create_service_principal(name)
        for scope in scopes or []:
            await assignments.create(scope, role_id or "", created["id"], "ServicePrincipal")
        return {
            "appId": created["appId"],
            "displayName": created["displayName"],
            "password": created["password"],
            "tenant": created["tenant"],
        }

    emit(run(home, go), output, CREATED_TABLE)


NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Display name.")]
RoleOpt = Annotated[str | None, typer.Option("--role", help="Role to assign (name or GUID), e.g. AcrPull.")]
ScopesOpt = Annotated[
    list[str] | None, typer.Option("--scopes", help="Scope for --role, a resource id (repeatable).")
]


@app.command("create-for-rbac")
def create_for_rbac(
    name: NameOpt = None,
    role: RoleOpt = None,
    scopes: ScopesOpt = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Create a service principal, optionally with a role on scopes (az ad sp create-for-rbac)."""
    _create(home, name, role, scopes, output)


@app.command("create")
def create(
    name: NameOpt = None,
    role: RoleOpt = None,
    scopes: ScopesOpt = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """The same as create-for-rbac."""
    _create(home, name, role, scopes, output)


@app.command("list")
def list_(output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """List service principals and managed identities of the tenant."""
    emit(run(home, lambda c: c.list_service_principals()), output, PRINCIPAL_TABLE)


@app.command("show")
def show(id: PrincipalArgument, output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """Show one service principal (secrets are never shown, only their hints)."""
    emit(run(home, lambda c: c.get_service_principal(id)), output, PRINCIPAL_TABLE)


@app.command("delete")
def delete(id: PrincipalArgument, output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """Delete a service principal and its secrets; prints nothing."""
    run(home, lambda c: c.delete_service_principal(id))


@app.command("reset-credentials")
def reset_credentials(
    id: PrincipalArgument,
    append: Annotated[bool, typer.Option(help="Keep existing secrets valid.")] = False,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Issue a new client secret (az ad sp credential reset)."""

    async def go(client: MoorageClient) -> Any:
        issued = await client.reset_credentials(id, append=append)
        return {"appId": issued["appId"], "password": issued["password"], "tenant": issued["tenant"]}

    emit(run(home, go), output)
