"""``moorage identity``: user-assigned managed identities, shaped like ``az identity``."""

from __future__ import annotations

from typing import Annotated

import typer

from moorage.cli.command import GroupOption, HomeOption, NameOption, OutputOption, emit, key_values, run
from moorage.cli.output import Column, OutputFormat, Table
from moorage.client import MoorageClient
from moorage.client.arm import ArmBody, Identities, ResourceGroups, resource_group_of

app = typer.Typer(
    help="User-assigned managed identities (Microsoft.ManagedIdentity/userAssignedIdentities).",
    no_args_is_help=True,
)

IDENTITY_TABLE = Table(
    [
        Column("Name", "name"),
        Column("ResourceGroup", lambda r: resource_group_of(str(r.get("id", "")))),
        Column("Location", "location"),
        Column("ClientId", "properties.clientId"),
        Column("PrincipalId", "properties.principalId"),
        Column("TenantId", "properties.tenantId"),
    ]
)


@app.command("create")
def create(
    *,
    name: NameOption,
    group: GroupOption,
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="Location (default: the group's).")
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="KEY=VALUE (repeatable).")] = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Create (or update) an identity (az identity create)."""

    async def go(client: MoorageClient) -> ArmBody:
        body: ArmBody = {"location": location or await ResourceGroups(client).location(group)}
        if tags:
            body["tags"] = key_values(tags, "--tags")
        return await Identities(client).create(group, name, body)

    emit(run(home, go), output, IDENTITY_TABLE)


@app.command("show")
def show(
    name: NameOption,
    group: GroupOption,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Show an identity: its clientId and principalId (az identity show)."""
    emit(run(home, lambda c: Identities(c).get(group, name)), output, IDENTITY_TABLE)


@app.command("list")
def list_(
    group: Annotated[
        str | None, typer.Option("--resource-group", "-g", help="Resource group (default: all).")
    ] = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """List identities of a resource group or of the subscription (az identity list)."""
    emit(run(home, lambda c: Identities(c).list(group)), output, IDENTITY_TABLE)


@app.command("delete")
def delete(
    name: NameOption,
    group: GroupOption,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; delete prints nothing
    home: HomeOption = None,
) -> None:
    """Delete an identity (az identity delete); prints nothing."""
    run(home, lambda c: Identities(c).delete(group, name))
