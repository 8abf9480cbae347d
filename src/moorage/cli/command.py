"""What every command that talks to the server shares: its options, the connection, how a
coroutine runs against the server, how results and errors are printed, and the exit codes.

Exit codes: 0 success; 1 the server refused (an ARM/OAuth2/OCI error, a failed long-running
operation); 2 a usage or local error (bad option values, unreadable files, no
``connection.json``, the server cannot be reached).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer

from moorage import config
from moorage.cli.errors import describe
from moorage.cli.output import OutputFormat, Table, render
from moorage.client import ApiError, Connection, MoorageClient
from moorage.core.errors import MoorageError

T = TypeVar("T")

EXIT_REFUSED = 1
EXIT_USAGE = 2

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data directory (default: $MOORAGE_HOME or the user data dir).")
]
OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", case_sensitive=False, help="Output format: json, yaml, table or tsv."),
]
GroupOption = Annotated[str, typer.Option("--resource-group", "-g", help="Resource group.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Name of the resource.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Do not wait for the long-running operation to finish.")
]


class UsageError(Exception):
    """A command was given values it cannot use; printed as ``ERROR: message``, exit code 2."""


def settings(home: Path | None) -> config.Settings:
    loaded = config.load()
    return loaded.with_overrides(home=home.resolve()) if home else loaded


def connection(home: Path | None) -> Connection:
    path = settings(home).connection_file
    if not path.exists():
        fail(f"{path} not found; is `moorage serve` running with this data directory?")
    return Connection.from_file(path)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"ERROR: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"WARNING: {message}", err=True)


def run(
    home: Path | None, action: Callable[[MoorageClient], Awaitable[T]], *, timeout: float | None = None
) -> T:
    """Run ``action`` with a client of the server of ``home`` (``timeout``: per request, when the
    client's default is too short); print failures and exit."""
    conn = connection(home)

    async def go() -> T:
        async with MoorageClient(conn) if timeout is None else MoorageClient(conn, timeout=timeout) as client:
            return await action(client)

    try:
        return asyncio.run(go())
    except ApiError as error:
        for line in describe(error):
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except UsageError as error:
        fail(str(error))
    except httpx.TransportError as error:
        fail(f"cannot reach the server at {conn.endpoint}: {error or type(error).__name__}")
    except MoorageError as error:
        typer.echo(f"ERROR: ({error.code}) {error.message}", err=True)
        raise typer.Exit(EXIT_REFUSED) from None


def emit(data: Any, output: OutputFormat, table: Table | None = None) -> None:
    """Print a command's result on stdout in the chosen format (nothing for ``None``)."""
    text = render(data, output, table)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def confirm(question: str, yes: bool) -> None:
    """Ask before something destructive, as az does; ``--yes`` skips, no terminal needs it."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Pass --yes to confirm when not running interactively.")
    if not typer.confirm(question, default=False):
        raise typer.Exit(0)


def key_values(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` strings (one pair per occurrence of the option; values may hold spaces)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects KEY=VALUE; got '{pair}'.")
        out[key] = value
    return out


def bool_text(value: str, option: str) -> bool:
    """az's boolean option values: true/false (also yes/no, 1/0)."""
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"{option} expects true or false; got '{value}'.")
