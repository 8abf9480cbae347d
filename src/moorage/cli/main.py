"""``moorage`` — typer app."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from moorage import __version__, config
from moorage.cli.image import image_app
from moorage.client import ApiError, Connection, MoorageClient
from moorage.core.errors import MoorageError

T = TypeVar("T")

app = typer.Typer(
    help="moorage: Azure Container Instances + Container Registry on your machine.", no_args_is_help=True
)
sp_app = typer.Typer(help="Service principals (Entra applications).", no_args_is_help=True)
app.add_typer(sp_app, name="sp")
app.add_typer(image_app, name="image")

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data directory (default: $MOORAGE_HOME or the user data dir).")
]


def _settings(home: Path | None) -> config.Settings:
    settings = config.load()
    return settings.with_overrides(home=home.resolve()) if home else settings


def _connection(home: Path | None) -> Connection:
    path = _settings(home).connection_file
    if not path.exists():
        typer.echo(f"error: {path} not found; is `moorage serve` running with this data directory?", err=True)
        raise typer.Exit(2)
    return Connection.from_file(path)


def _run(home: Path | None, action: Callable[[MoorageClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with MoorageClient(_connection(home)) as client:
            return await action(client)

    try:
        return asyncio.run(go())
    except ApiError as error:
        typer.echo(f"ERROR: ({error.code}) {error.message}", err=True)
        raise typer.Exit(1) from None
    except MoorageError as error:
        typer.echo(f"ERROR: ({error.code}) {error.message}", err=True)
        raise typer.Exit(1) from None


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8443; 0 picks a free one).")] = None,
) -> None:
    """Run the server (HTTPS) until interrupted."""
    # Imported here: the server stack is heavy and only this command needs it.
    from moorage.server import serve as run_server  # noqa: PLC0415

    settings = _settings(home).with_overrides(host=host, port=port)
    try:
        asyncio.run(run_server(settings))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        typer.echo(f"error: cannot serve on {settings.host}:{settings.port}: {error.strerror}", err=True)
        raise typer.Exit(1) from None


@app.command()
def ca(home: HomeOption = None) -> None:
    """Print the path of the local CA certificate that clients must trust."""
    path = _settings(home).ca_path
    if not path.exists():
        typer.echo(f"error: {path} does not exist yet; start `moorage serve` once.", err=True)
        raise typer.Exit(2)
    typer.echo(str(path))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def status(home: HomeOption = None) -> None:
    """Check that the server answers and the bootstrap credentials work."""

    async def go(client: MoorageClient) -> Any:
        subs = await client.list_value("/subscriptions", "2022-12-01")
        return {
            "endpoint": client.connection.endpoint,
            "tenantId": client.connection.tenant_id,
            "subscriptions": [s["subscriptionId"] for s in subs],
            "status": "ok",
        }

    _print(_run(home, go))


@sp_app.command("create")
def sp_create(
    home: HomeOption = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Display name.")] = None,
    role: Annotated[str | None, typer.Option(help="Role to assign (name or GUID), e.g. AcrPull.")] = None,
    scopes: Annotated[list[str] | None, typer.Option(help="Scopes for --role (resource ids).")] = None,
) -> None:
    """Create a service principal (output shaped like `az ad sp create-for-rbac`)."""
    if role and not scopes:
        typer.echo("error: --role needs --scopes", err=True)
        raise typer.Exit(2)

    async def go(client: MoorageClient) -> Any:
        created = await client.create_service_principal(name)
        for scope in scopes or []:
            await client.create_role_assignment(scope, role or "", created["id"])
        return {
            "appId": created["appId"],
            "displayName": created["displayName"],
            "password": created["password"],
            "tenant": created["tenant"],
        }

    _print(_run(home, go))


@sp_app.command("list")
def sp_list(home: HomeOption = None) -> None:
    """List service principals and managed identities of the tenant."""
    _print(_run(home, lambda c: c.list_service_principals()))


@sp_app.command("show")
def sp_show(id: Annotated[str, typer.Argument(help="appId or object id")], home: HomeOption = None) -> None:
    """Show one service principal (secrets are never shown, only their hints)."""
    _print(_run(home, lambda c: c.get_service_principal(id)))


@sp_app.command("delete")
def sp_delete(id: Annotated[str, typer.Argument(help="appId or object id")], home: HomeOption = None) -> None:
    """Delete a service principal and its secrets."""
    _run(home, lambda c: c.delete_service_principal(id))


@sp_app.command("reset-credentials")
def sp_reset(
    id: Annotated[str, typer.Argument(help="appId or object id")],
    home: HomeOption = None,
    append: Annotated[bool, typer.Option(help="Keep existing secrets valid.")] = False,
) -> None:
    """Issue a new client secret (like `az ad sp credential reset`)."""

    async def go(client: MoorageClient) -> Any:
        issued = await client.reset_credentials(id, append=append)
        return {"appId": issued["appId"], "password": issued["password"], "tenant": issued["tenant"]}

    _print(_run(home, go))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
