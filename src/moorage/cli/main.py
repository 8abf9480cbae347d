"""``moorage`` — typer app: the server commands here, one module per resource command group."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer

from moorage import __version__
from moorage.cli import acr, container, deployment, group, identity, role, sp
from moorage.cli.bundle import support_bundle
from moorage.cli.command import EXIT_USAGE, HomeOption, OutputOption, UsageError, emit, run, settings
from moorage.cli.diagnose import diagnose
from moorage.cli.image import image_app
from moorage.cli.output import OutputFormat
from moorage.client import MoorageClient

app = typer.Typer(
    help="moorage: Azure Container Instances + Container Registry on your machine.", no_args_is_help=True
)
app.add_typer(group.app, name="group")
app.add_typer(acr.app, name="acr")
app.add_typer(identity.app, name="identity")
app.add_typer(sp.app, name="sp")
app.add_typer(role.app, name="role")
app.add_typer(container.app, name="container")
app.add_typer(deployment.app, name="deployment")
app.add_typer(image_app, name="image")
app.command("diagnose")(diagnose)
app.command("support-bundle")(support_bundle)


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8443; 0 picks a free one).")] = None,
) -> None:
    """Run the server (HTTPS) until interrupted."""
    # Imported here: the server stack is heavy and only this command needs it.
    from moorage.server import serve as run_server  # noqa: PLC0415

    chosen = settings(home).with_overrides(host=host, port=port)
    try:
        asyncio.run(run_server(chosen))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        typer.echo(f"error: cannot serve on {chosen.host}:{chosen.port}: {error.strerror}", err=True)
        raise typer.Exit(1) from None


@app.command()
def ca(home: HomeOption = None) -> None:
    """Print the path of the local CA certificate that clients must trust."""
    path = settings(home).ca_path
    if not path.exists():
        typer.echo(f"error: {path} does not exist yet; start `moorage serve` once.", err=True)
        raise typer.Exit(2)
    typer.echo(str(path))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def status(output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """Check that the server answers and the bootstrap credentials work."""

    async def go(client: MoorageClient) -> Any:
        subs = await client.list_value("/subscriptions", "2022-12-01")
        return {
            "endpoint": client.connection.endpoint,
            "tenantId": client.connection.tenant_id,
            "subscriptions": [s["subscriptionId"] for s in subs],
            "status": "ok",
        }

    emit(run(home, go), output)


def main() -> None:
    try:
        app()
    except UsageError as error:
        # Raised while a command reads its options and files, before it reaches the server.
        typer.echo(f"ERROR: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
