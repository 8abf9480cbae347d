"""``moorage group``: resource groups, shaped like ``az group`` (every resource command needs one)."""

from __future__ import annotations

from typing import Annotated

import typer

from moorage.cli.command import (
    HomeOption,
    NameOption,
    OutputOption,
    YesOption,
    confirm,
    emit,
    key_values,
    run,
)
from moorage.cli.output import Column, OutputFormat, Table
from moorage.client import MoorageClient
from moorage.client.arm import ArmBody, ResourceGroups

app = typer.Typer(help="Resource groups.", no_args_is_help=True)

GROUP_TABLE = Table(
    [Column("Name", "name"), Column("Location", "location"), Column("Status", "properties.provisioningState")]
)


@app.command("create")
def create(
    *,
    name: NameOption,
    location: Annotated[str, typer.Option("--location", "-l", help="Location, e.g. westus.")],
    tags: Annotated[list[str] | None, typer.Option("--tags", help="KEY=VALUE (repeatable).")] = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Create (or update) a resource group (az group create)."""

    async def go(client: MoorageClient) -> ArmBody:
        body: ArmBody = {"location": location}
        if tags:
            body["tags"] = key_values(tags, "--tags")
        return await ResourceGroups(client).create(name, body)

    emit(run(home, go), output, GROUP_TABLE)


@app.command("show")
def show(name: NameOption, output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """Show a resource group (az group show)."""
    emit(run(home, lambda c: ResourceGroups(c).get(name)), output, GROUP_TABLE)


@app.command("list")
def list_(output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """List the subscription's resource groups (az group list)."""
    emit(run(home, lambda c: ResourceGroups(c).list()), output, GROUP_TABLE)


@app.command("delete")
def delete(
    name: NameOption,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; delete prints nothing
    home: HomeOption = None,
) -> None:
    """Delete a resource group and everything in it, waiting until it is gone (az group delete)."""
    confirm(f"Are you sure you want to delete the resource group '{name}' and all its resources?", yes)
    run(home, lambda c: ResourceGroups(c).delete(name))
