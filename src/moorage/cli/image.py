"""``moorage image push|pull|inspect``: get images into and out of registries without Docker.

Registries are reached directly over HTTPS (:mod:`moorage.client.oci`). Credentials:

* ``--username/--password`` (or ``--password-stdin``): Basic credentials for the registry's
  token service — an admin user, a service principal (appId + secret), a scope-map token.
* otherwise, for a registry of this moorage server — one whose TLS certificate was issued by
  the server's CA, which only the server can do — the CLI's own identity from
  ``connection.json`` (an Entra token for ARM exchanged at the registry's ``/oauth2/exchange``,
  as ``az acr login`` does). The identity is never sent to any other registry.
* otherwise anonymous.

``<name>.azurecr.io`` references resolve, through ARM, to the login server of the moorage
registry ``<name>`` when there is one. The server's CA is trusted in addition to the system's.

Progress goes to stderr: live bars when stderr is a terminal, one line per event otherwise.
Results go to stdout (``--output json`` for a JSON document). Failures print
``ERROR: (<code>) <message>`` and exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from moorage import config
from moorage.cli.output import OutputFormat as DataFormat
from moorage.cli.output import render as render_data
from moorage.client import ARM_SCOPE, Connection, MoorageClient, oci
from moorage.client.images import BuildOptions, LayoutWriter, config_summary, open_source
from moorage.client.transfer import PullResult, ResolvedImage, pull_to_layout, push_bundle, resolve_image
from moorage.core.errors import InvalidArgument, MoorageError
from moorage.core.platform import DEFAULT_PLATFORM, Platform
from moorage.core.reference import DOCKER_HUB, ImageReference, parse_reference

T = TypeVar("T")
REGISTRY_API = "2025-04-01"
AZURECR_SUFFIX = ".azurecr.io"

image_app = typer.Typer(
    help="Container images: push (from a directory, an OCI layout or a tarball), pull, inspect.",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    tsv = "tsv"


def _emit(data: Any, output: OutputFormat) -> bool:
    """Print ``data`` in a machine format (json, yaml, tsv); False for ``table`` (the caller's own)."""
    if output is OutputFormat.table:
        return False
    typer.echo(render_data(data, DataFormat(output.value)), nl=False)
    return True


HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data directory (default: $MOORAGE_HOME or the user data dir).")
]
UsernameOption = Annotated[
    str | None,
    typer.Option("--username", "-u", help="Registry user: admin user, service principal appId, token name."),
]
PasswordOption = Annotated[
    str | None, typer.Option("--password", "-p", help="Password or secret for --username.")
]
PasswordStdinOption = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")]
OutputOption = Annotated[OutputFormat, typer.Option("--output", "-o", help="Result format on stdout.")]
PlatformOption = Annotated[
    str | None,
    typer.Option(
        "--platform",
        help="os/architecture or os/architecture/variant: the platform to pick from a multi-platform "
        "image (default linux/amd64); a single-platform image must then be for it.",
    ),
]


# -- running --------------------------------------------------------------------------------------


def _fail(code: str, message: str) -> typer.Exit:
    typer.echo(f"ERROR: ({code}) {message}", err=True)
    return typer.Exit(1)


def _execute(action: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(action())
    except MoorageError as error:
        raise _fail(error.code, error.message) from None
    except httpx.TransportError as error:  # the moorage server itself (ARM, token endpoint)
        raise _fail("ServerUnreachable", f"cannot reach the moorage server: {error}") from None
    except OSError as error:  # local files: the pull destination, temporary space
        raise _fail("FileError", f"{error.filename or 'a local file'}: {error.strerror or error}") from None


def _settings(home: Path | None) -> config.Settings:
    settings = config.load()
    return settings.with_overrides(home=home.resolve()) if home else settings


def _connection(home: Path | None) -> Connection | None:
    path = _settings(home).connection_file
    return Connection.from_file(path) if path.exists() else None


def _ssl_context(connection: Connection | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if connection is not None and connection.ca_path and Path(connection.ca_path).exists():
        context.load_verify_locations(cafile=connection.ca_path)
    return context


def _reference(text: str) -> ImageReference:
    return parse_reference(text)


def _display(host: str, reference: ImageReference) -> str:
    """``host/repository:tag`` or ``host/repository@digest`` (``host``: where it was found)."""
    return str(ImageReference(host, reference.repository, reference.tag, reference.digest))


def _credential_args(
    username: str | None, password: str | None, password_stdin: bool
) -> oci.BasicCredential | None:
    if password_stdin:
        if password is not None:
            raise InvalidArgument(
                "--password and --password-stdin exclude each other", code="InvalidArguments"
            )
        password = sys.stdin.readline().rstrip("\r\n")
    if username is None and password is None:
        return None
    if not username or password is None:
        raise InvalidArgument("--username and --password go together", code="InvalidArguments")
    return oci.BasicCredential(username, password)


@dataclass(frozen=True)
class _Target:
    """Where a reference leads: the host to connect to and with what credential."""

    host: str
    credential: oci.Credential
    moorage: bool


async def _locate(
    host: str, connection: Connection | None, arm: MoorageClient | None, view: _View
) -> tuple[str, bool]:
    """``(host to connect to, whether it is a registry of this moorage server)``.

    A registry is moorage's when its TLS certificate was issued by the server's CA (only the
    server holds that CA's key): the CLI's identity is sent to no other registry. An Azure-form
    ``<name>.azurecr.io`` is looked up in ARM and becomes that registry's login server."""
    if host == DOCKER_HUB:
        return "registry-1.docker.io", False  # Docker Hub's API host
    if connection is None or arm is None:
        return host, False
    if host.lower().endswith(AZURECR_SUFFIX):
        name = host[: -len(AZURECR_SUFFIX)].lower()
        path = arm.sub_path("/providers/Microsoft.ContainerRegistry/registries")
        for registry in await arm.list_value(path, REGISTRY_API):
            login = str((registry.get("properties") or {}).get("loginServer", ""))
            if str(registry.get("name", "")).lower() == name and login:
                view.note(f"{host} is the moorage registry '{registry['name']}' at {login}")
                return login, True
        view.note(f"note: this moorage server has no registry named '{name}'; trying {host} itself")
        return host, False
    if not connection.ca_path:
        return host, False
    return host, await oci.certified_by(host, connection.ca_path)


@contextlib.asynccontextmanager
async def _registry(
    reference: ImageReference,
    home: Path | None,
    basic: oci.BasicCredential | None,
    actions: tuple[str, ...],
    view: _View,
    *,
    chunk_size: int | None = None,
) -> AsyncIterator[oci.RegistryClient]:
    connection = _connection(home)
    async with contextlib.AsyncExitStack() as stack:
        arm = await stack.enter_async_context(MoorageClient(connection)) if connection is not None else None
        host, moorage = await _locate(reference.registry, connection, arm, view)
        credential: oci.Credential
        if basic is not None:
            credential = basic
        elif moorage and arm is not None:
            client = arm
            credential = oci.EntraExchange(lambda: client.token(ARM_SCOPE))
        else:
            credential = oci.Anonymous()
        registry = oci.RegistryClient(
            host,
            credential,
            actions=actions,
            verify=_ssl_context(connection),
            monolithic_limit=chunk_size or oci.MONOLITHIC_LIMIT,
            chunk_size=chunk_size or oci.CHUNK_SIZE,
        )
        yield await stack.enter_async_context(registry)


# -- progress -------------------------------------------------------------------------------------


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _short(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:12]}"


_KINDS = {
    oci.OCI_CONFIG: "config",
    "application/vnd.docker.container.image.v1+json": "config",
}


class _View:
    """Transfer progress on stderr: rich bars on a terminal, plain lines otherwise."""

    def __init__(self, verb: str, *, live: bool | None = None) -> None:
        self._verb = verb  # "upload" or "download"
        self._live = sys.stderr.isatty() if live is None else live
        self._console = Console(stderr=True)
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}
        self._overall: TaskID | None = None
        self._planned = 0

    def __enter__(self) -> _View:
        if self._live:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def note(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=True)

    def plan(self, blobs: int, total: int) -> None:
        """What the transfer will move at most (``blobs`` blobs of ``total`` bytes)."""
        what = f"{blobs} {'layers' if self._verb == 'download' else 'blobs'}"
        if self._bars is not None:
            self._planned = total
            self._overall = self._bars.add_task(what, total=total)
        else:
            self.note(f"{what}, {_size(total)}")

    def __call__(self, event: oci.Progress) -> None:
        kind = _KINDS.get(event.media_type, "layer")
        label = f"{kind} {_short(event.digest)}"
        if self._bars is None:
            if event.phase is oci.Phase.START:
                self.note(f"{label}: {self._verb}ing {_size(event.total)}")
            elif event.phase is oci.Phase.DONE:
                self.note(f"{label}: done")
            elif event.phase is oci.Phase.EXISTS:
                self.note(f"{label}: exists, skipped")
            return
        task = self._tasks.get(event.digest)
        if task is None:
            task = self._bars.add_task(label, total=event.total)
            self._tasks[event.digest] = task
        if event.phase is oci.Phase.EXISTS:
            self._bars.update(task, completed=event.total, description=f"{label} (exists)")
        else:
            self._bars.update(task, completed=event.completed)
        if self._overall is None:
            return
        if event.phase is oci.Phase.EXISTS:
            # Nothing moves for it: out of the total, so that the overall rate stays true.
            self._planned -= event.total
            self._bars.update(self._overall, total=self._planned)
            return
        before = self._done.get(event.digest, 0)
        self._done[event.digest] = event.completed
        self._bars.advance(self._overall, event.completed - before)


# -- push -----------------------------------------------------------------------------------------


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _byte_size(text: str | None) -> int | None:
    """``--chunk-size``: bytes, or a number with k/M/G (binary units)."""
    if text is None:
        return None
    number, unit = text.strip().rstrip("iBb"), ""
    if number and number[-1].lower() in "kmg":
        number, unit = number[:-1], number[-1].lower()
    if not number.isdigit() or int(number) < 1:
        raise InvalidArgument(f"--chunk-size '{text}' is not a size such as 16M", code="InvalidArguments")
    return int(number) * _UNITS[unit]


def _command_list(text: str | None, option: str) -> list[str] | None:
    """``--entrypoint``/``--cmd``: a JSON array, or a command line split like a shell does."""
    if text is None:
        return None
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(
                f"{option} must be a JSON array of strings or a command line", code="InvalidArguments"
            )
        return value
    try:
        return shlex.split(text)
    except ValueError as error:
        raise InvalidArgument(f"{option}: {error}", code="InvalidArguments") from None


@image_app.command("push")
def push(  # noqa: PLR0917 - typer maps each option to a parameter
    source: Annotated[
        str,
        typer.Argument(
            help="A directory (root file system), an OCI layout (PATH or PATH:REF), or an image tarball."
        ),
    ],
    target: Annotated[str, typer.Argument(help="REGISTRY/REPOSITORY:TAG, e.g. 127.0.0.1:40123/app:v1.")],
    home: HomeOption = None,
    username: UsernameOption = None,
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    entrypoint: Annotated[
        str | None, typer.Option(help="Directory builds: entrypoint (JSON array or command line).")
    ] = None,
    cmd: Annotated[
        str | None, typer.Option(help="Directory builds: command (JSON array or command line).")
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="Directory builds: NAME=VALUE (repeatable).")] = None,
    workdir: Annotated[str | None, typer.Option(help="Directory builds: working directory.")] = None,
    port: Annotated[
        list[str] | None, typer.Option(help="Directory builds: exposed port, PORT or PORT/udp (repeatable).")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="Directory builds: KEY=VALUE label (repeatable).")
    ] = None,
    platform: Annotated[
        str, typer.Option("--platform", help="Directory builds: the image's platform (os/architecture).")
    ] = "linux/amd64",
    chunk_size: Annotated[
        str | None,
        typer.Option(
            help="Upload blobs larger than this in chunks of this size (default: 16M chunks above 64M)."
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Push an image to a registry, without Docker."""

    async def go() -> dict[str, Any]:
        reference = _reference(target)
        basic = _credential_args(username, password, password_stdin)
        chunk = _byte_size(chunk_size)
        options = BuildOptions(
            entrypoint=_command_list(entrypoint, "--entrypoint"),
            cmd=_command_list(cmd, "--cmd"),
            env=tuple(env or ()),
            workdir=workdir,
            ports=tuple(port or ()),
            platform=Platform.parse(platform),
            labels=tuple(label or ()),
        )
        with _View("upload") as view, tempfile.TemporaryDirectory(prefix="moorage-image-") as work:
            view.note(f"reading {source}")
            bundle = await asyncio.to_thread(open_source, source, Path(work), options)
            async with _registry(reference, home, basic, ("pull", "push"), view, chunk_size=chunk) as client:
                view.note(f"pushing to {_display(client.host, reference)}")
                view.plan(len(bundle.blobs), sum(b.size for b in bundle.blobs.values()))
                result = await push_bundle(client, reference.repository, reference.locator, bundle, view)
                view.note(
                    f"pushed {len(result.uploaded)} blobs ({_size(result.bytes_uploaded)}), "
                    f"{len(result.existing)} already there; manifest {result.digest}"
                )
                return result.to_json(f"{client.host}/{reference.repository}")

    summary = _execute(go)
    if not _emit(summary, output):
        name = summary["reference"].split("@")[0]
        typer.echo(f"{name}@{summary['digest']}")


# -- pull -----------------------------------------------------------------------------------------


def _pull_json(reference: str, result: PullResult, ref_name: str | None) -> dict[str, Any]:
    resolved = result.resolved
    return {
        "reference": reference,
        "digest": resolved.top.digest,
        "mediaType": resolved.top.media_type,
        "manifestDigest": resolved.manifest.digest,
        "platform": str(resolved.platform) if resolved.platform else None,
        "layout": str(result.layout),
        "refName": ref_name,
        "layers": [layer.to_json() for layer in resolved.layers],
        "blobsDownloaded": list(result.downloaded),
        "blobsExisting": list(result.existing),
        "bytesDownloaded": result.bytes_downloaded,
    }


@image_app.command("pull")
def pull(  # noqa: PLR0917 - typer maps each option to a parameter
    ref: Annotated[str, typer.Argument(help="REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST.")],
    dest: Annotated[
        Path, typer.Argument(help="Directory to write an OCI image layout to (created or extended).")
    ],
    home: HomeOption = None,
    username: UsernameOption = None,
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    platform: PlatformOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Ref name in the layout's index.json (default: the tag).")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Pull one platform of an image into an OCI image layout (as skopeo's oci:DIR:NAME)."""

    async def go() -> dict[str, Any]:
        reference = _reference(ref)
        basic = _credential_args(username, password, password_stdin)
        wanted = Platform.parse(platform) if platform else DEFAULT_PLATFORM
        ref_name = name if name is not None else reference.tag
        layout = LayoutWriter(dest)
        with _View("download") as view:
            async with _registry(reference, home, basic, ("pull",), view) as client:
                view.note(f"pulling {_display(client.host, reference)} ({wanted})")
                result = await pull_to_layout(
                    client,
                    reference.repository,
                    reference.locator,
                    wanted,
                    strict=platform is not None,
                    layout=layout,
                    ref_name=ref_name,
                    progress=view,
                    planned=view.plan,
                )
                view.note(
                    f"pulled {len(result.downloaded)} layers ({_size(result.bytes_downloaded)}), "
                    f"{len(result.existing)} already there; manifest {result.resolved.manifest.digest}"
                )
                return _pull_json(_display(client.host, reference), result, ref_name)

    summary = _execute(go)
    if not _emit(summary, output):
        where = f"{summary['layout']}:{summary['refName']}" if summary["refName"] else summary["layout"]
        typer.echo(f"{where} {summary['manifestDigest']} {summary['platform'] or ''}".rstrip())


# -- inspect --------------------------------------------------------------------------------------


def _inspect_json(reference: str, resolved: ResolvedImage) -> dict[str, Any]:
    platforms = [
        {
            "platform": str(entry.platform),
            "digest": entry.digest,
            "mediaType": entry.media_type,
            "size": entry.size,
        }
        for entry in resolved.platforms
    ]
    if not platforms and resolved.platform is not None:
        platforms = [
            {
                "platform": str(resolved.platform),
                "digest": resolved.manifest.digest,
                "mediaType": resolved.manifest.media_type,
                "size": len(resolved.manifest.body),
            }
        ]
    layers = [layer.to_json() for layer in resolved.layers]
    return {
        "reference": reference,
        "digest": resolved.top.digest,
        "mediaType": resolved.top.media_type,
        "platforms": platforms,
        "manifest": {
            "digest": resolved.manifest.digest,
            "mediaType": resolved.manifest.media_type,
            "platform": str(resolved.platform) if resolved.platform else None,
            "size": len(resolved.manifest.body),
        },
        "config": {
            "digest": resolved.config.digest,
            "mediaType": resolved.config.media_type,
            "size": resolved.config.size,
            **config_summary(resolved.config_body),
        },
        "layers": layers,
        "size": len(resolved.manifest.body)
        + resolved.config.size
        + sum(layer.size for layer in resolved.layers),
    }


def _print_inspect(data: dict[str, Any]) -> None:
    config_data = data["config"]
    rows = [
        ("Reference", data["reference"]),
        ("Digest", data["digest"]),
        ("Media type", data["mediaType"]),
        ("Platforms", ", ".join(p["platform"] for p in data["platforms"]) or "-"),
        ("Manifest", f"{data['manifest']['digest']} ({data['manifest']['platform'] or '?'})"),
        ("Entrypoint", json.dumps(config_data["entrypoint"]) if config_data["entrypoint"] else "-"),
        ("Cmd", json.dumps(config_data["cmd"]) if config_data["cmd"] else "-"),
        ("Working dir", config_data["workingDir"] or "-"),
        ("Ports", ", ".join(config_data["exposedPorts"]) or "-"),
        ("Env", "\n".join(config_data["env"]) or "-"),
        ("Size", _size(data["size"])),
    ]
    width = max(len(key) for key, _ in rows) + 2
    for key, value in rows:
        lines = str(value).split("\n")
        typer.echo(f"{key + ':':<{width}}{lines[0]}")
        for line in lines[1:]:
            typer.echo(" " * width + line)
    typer.echo("Layers:")
    for layer in data["layers"]:
        typer.echo(f"  {layer['digest']}  {_size(layer['size']):>10}  {layer['mediaType']}")


@image_app.command("inspect")
def inspect(  # noqa: PLR0917 - typer maps each option to a parameter
    ref: Annotated[str, typer.Argument(help="REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST.")],
    home: HomeOption = None,
    username: UsernameOption = None,
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    platform: PlatformOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show an image's digest, media type, platforms, configuration and layers."""

    async def go() -> dict[str, Any]:
        reference = _reference(ref)
        basic = _credential_args(username, password, password_stdin)
        wanted = Platform.parse(platform) if platform else DEFAULT_PLATFORM
        with _View("download", live=False) as view:
            async with _registry(reference, home, basic, ("pull",), view) as client:
                resolved = await resolve_image(
                    client, reference.repository, reference.locator, wanted, strict=platform is not None
                )
                return _inspect_json(_display(client.host, reference), resolved)

    data = _execute(go)
    if not _emit(data, output):
        _print_inspect(data)
