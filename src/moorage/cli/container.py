"""``moorage container``: container groups, shaped like ``az container``.

``create`` builds a one-container group the way az does (the container is named after the
group; 1 CPU, 1.5 GB, port 80 and restart policy Always unless told otherwise; ``--ip-address
Public`` publishes the ports) and shows its state while it provisions. A group whose image
cannot be pulled is refused at once with ACI's ``InaccessibleImage`` and moorage's classified
cause. ``exec`` runs one command (non-interactive) over ACI's exec websocket and prints its
output; ``logs --follow`` polls the logs until the container stops.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from moorage.cli.command import (
    EXIT_REFUSED,
    GroupOption,
    HomeOption,
    NameOption,
    NoWaitOption,
    OutputOption,
    UsageError,
    YesOption,
    confirm,
    emit,
    fail,
    key_values,
    run,
)
from moorage.cli.output import Column, OutputFormat, Table, path_get
from moorage.cli.progress import ProgressTable, Row
from moorage.client import MoorageClient
from moorage.client.arm import ArmBody, ContainerGroups, Identities, ResourceGroups, resource_group_of
from moorage.client.container_exec import run_exec_session

app = typer.Typer(
    help="Container groups (Microsoft.ContainerInstance/containerGroups).", no_args_is_help=True
)

SYSTEM_IDENTITY = "[system]"


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class OsType(StrEnum):
    LINUX = "Linux"
    WINDOWS = "Windows"


class IpAddressType(StrEnum):
    PUBLIC = "Public"
    PRIVATE = "Private"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"


def _status(group: ArmBody) -> str:
    props = group.get("properties") or {}
    return str(path_get(props, "instanceView.state") or props.get("provisioningState") or "")


def _ip_ports(group: ArmBody) -> str:
    ip = path_get(group, "properties.ipAddress") or {}
    ports = ",".join(str(p.get("port")) for p in ip.get("ports") or [])
    return f"{ip.get('ip', '')}:{ports}" if ip else ""


def _cpu_memory(group: ArmBody) -> str:
    cpu = memory = 0.0
    for container in path_get(group, "properties.containers") or []:
        requests = path_get(container, "properties.resources.requests") or {}
        cpu += float(requests.get("cpu") or 0)
        memory += float(requests.get("memoryInGB") or 0)
    return f"{cpu:g} core/{memory:g} gb"


GROUP_TABLE = Table(
    [
        Column("Name", "name"),
        Column("ResourceGroup", lambda g: resource_group_of(str(g.get("id", "")))),
        Column("Status", _status),
        Column("Image", "properties.containers.0.properties.image"),
        Column("IP:ports", _ip_ports),
        Column("Network", "properties.ipAddress.type"),
        Column("CPU/Memory", _cpu_memory),
        Column("OsType", "properties.osType"),
        Column("Location", "location"),
    ]
)
LOGS_TABLE = Table([Column("Content", "content")])


@dataclass(frozen=True)
class RegistryLogin:
    """``--registry-*`` and ``--acr-identity``: how the platform authenticates to the registry."""

    server: str | None = None
    username: str | None = None
    password: str | None = None
    identity: str | None = None


@dataclass(frozen=True)
class GroupSpec:
    """What ``container create`` was asked for (one container, named after the group)."""

    name: str
    location: str
    image: str
    cpu: float = 1.0
    memory: float = 1.5
    ports: tuple[int, ...] = (80,)
    protocol: Protocol = Protocol.TCP
    ip_address: IpAddressType | None = None
    dns_name_label: str | None = None
    command_line: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    secure_environment: dict[str, str] = field(default_factory=dict)
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    os_type: OsType = OsType.LINUX
    registry: RegistryLogin = field(default_factory=RegistryLogin)
    identities: tuple[str, ...] = ()  # resource ids, or [system]


def image_registry(image: str) -> str | None:
    """The registry host an image reference names, if any (``host[:port]/repo:tag``)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def parse_ports(values: list[str] | None) -> tuple[int, ...]:
    """``--ports`` values: repeatable, each may hold several ports separated by spaces or commas."""
    if not values:
        return (80,)
    ports: list[int] = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or not 1 <= int(part) <= 65535:
                raise UsageError(f"--ports expects port numbers (1-65535); got '{part}'.")
            ports.append(int(part))
    return tuple(dict.fromkeys(ports))


def group_body(spec: GroupSpec) -> ArmBody:
    """The ARM body of the group ``spec`` describes."""
    env = [{"name": k, "value": v} for k, v in spec.environment.items()]
    env += [{"name": k, "secureValue": v} for k, v in spec.secure_environment.items()]
    container: dict[str, Any] = {
        "image": spec.image,
        "ports": [{"port": p, "protocol": spec.protocol.value} for p in spec.ports],
        "environmentVariables": env,
        "resources": {"requests": {"cpu": spec.cpu, "memoryInGB": spec.memory}},
    }
    if spec.command_line:
        container["command"] = shlex.split(spec.command_line)
    props: dict[str, Any] = {
        "containers": [{"name": spec.name, "properties": container}],
        "osType": spec.os_type.value,
        "restartPolicy": spec.restart_policy.value,
    }
    login = spec.registry
    server = login.server or image_registry(spec.image)
    if login.username or login.password:
        if not (login.username and login.password and server):
            raise UsageError(
                "--registry-username and --registry-password go together, and need the registry "
                "(--registry-login-server, or an image reference that names it)."
            )
        props["imageRegistryCredentials"] = [
            {"server": server, "username": login.username, "password": login.password}
        ]
    elif login.identity:
        if not server:
            raise UsageError(
                "--acr-identity needs --registry-login-server or an image that names its registry."
            )
        props["imageRegistryCredentials"] = [{"server": server, "identity": login.identity}]
    if spec.ip_address is not None:
        ip: dict[str, Any] = {
            "type": spec.ip_address.value,
            "ports": [{"port": p, "protocol": spec.protocol.value} for p in spec.ports],
        }
        if spec.dns_name_label:
            ip["dnsNameLabel"] = spec.dns_name_label
        props["ipAddress"] = ip
    body: ArmBody = {"location": spec.location, "properties": props}
    identities = list(spec.identities)
    if login.identity and login.identity not in identities:
        identities.append(login.identity)  # the pulling identity must be the group's
    user = [i for i in identities if i.lower() != SYSTEM_IDENTITY]
    system = len(user) != len(identities)
    if identities:
        kind = ", ".join(k for k, on in (("SystemAssigned", system), ("UserAssigned", bool(user))) if on)
        identity: dict[str, Any] = {"type": kind}
        if user:
            identity["userAssignedIdentities"] = {i: {} for i in user}
        body["identity"] = identity
    return body


def _progress_rows(group: ArmBody) -> list[Row]:
    props = group.get("properties") or {}
    rows: list[Row] = [
        (
            str(group.get("name", "")),
            "group",
            str(props.get("provisioningState") or ""),
            str(path_get(props, "instanceView.state") or ""),
            "",
        )
    ]
    for container in props.get("containers") or []:
        view = path_get(container, "properties.instanceView") or {}
        events = view.get("events") or []
        last = events[-1] if events else {}
        rows.append(
            (
                str(container.get("name", "")),
                "container",
                str(path_get(view, "currentState.state") or ""),
                str(path_get(view, "currentState.detailStatus") or ""),
                f"{last.get('name', '')}: {last.get('message', '')}" if last else "",
            )
        )
    return rows


async def _identity_id(client: MoorageClient, group: str, value: str) -> str:
    """A resource id or ``[system]`` as given; a bare name is an identity of ``group``."""
    if value.lower() == SYSTEM_IDENTITY or value.startswith("/"):
        return value
    return Identities(client).path(group, value)


async def _create(
    client: MoorageClient,
    group: str,
    spec_without_location: GroupSpec,
    assign_identity: list[str],
    acr_identity: str | None,
    *,
    wait: bool,
) -> ArmBody | None:
    spec = spec_without_location
    if not spec.location:
        spec = replace(spec, location=await ResourceGroups(client).location(group))
    identities = tuple([await _identity_id(client, group, i) for i in assign_identity])
    acr = await _identity_id(client, group, acr_identity) if acr_identity else None
    registry = RegistryLogin(spec.registry.server, spec.registry.username, spec.registry.password, acr)
    body = group_body(replace(spec, identities=identities, registry=registry))
    groups = ContainerGroups(client)
    operation = await groups.begin_create(group, spec.name, body)
    if not wait:
        return None
    headers = ("Name", "Kind", "State", "Detail", "LastEvent")
    with ProgressTable(f"container group {spec.name}", headers) as progress:
        while True:
            status = await operation.status()
            progress.update(status.status, _progress_rows(await groups.get(group, spec.name)))
            if status.finished:
                break
            await asyncio.sleep(min(operation.retry_after, 1.0))
    if status.status != "Succeeded":
        raise status.failure()
    return await groups.get(group, spec.name)


@app.command("create")
def create(
    *,
    name: NameOption,
    group: GroupOption,
    image: Annotated[str, typer.Option("--image", help="Image reference, e.g. myreg.azurecr.io/app:v1.")],
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="Location (default: the group's).")
    ] = None,
    registry_login_server: Annotated[
        str | None, typer.Option("--registry-login-server", help="Registry (default: the image's).")
    ] = None,
    registry_username: Annotated[str | None, typer.Option("--registry-username")] = None,
    registry_password: Annotated[str | None, typer.Option("--registry-password")] = None,
    assign_identity: Annotated[
        list[str] | None,
        typer.Option(
            "--assign-identity",
            help="[system], or a user-assigned identity's id or name in the group (repeatable).",
        ),
    ] = None,
    acr_identity: Annotated[
        str | None,
        typer.Option("--acr-identity", help="Identity that pulls the image ([system], id or name)."),
    ] = None,
    ports: Annotated[
        list[str] | None, typer.Option("--ports", help="Ports to open (repeatable or '80 443'; default 80).")
    ] = None,
    protocol: Annotated[Protocol, typer.Option("--protocol", case_sensitive=False)] = Protocol.TCP,
    ip_address: Annotated[
        IpAddressType | None,
        typer.Option("--ip-address", case_sensitive=False, help="Public publishes the ports on the host."),
    ] = None,
    dns_name_label: Annotated[str | None, typer.Option("--dns-name-label")] = None,
    cpu: Annotated[float, typer.Option("--cpu", help="CPU cores.")] = 1.0,
    memory: Annotated[float, typer.Option("--memory", help="Memory in GB.")] = 1.5,
    command_line: Annotated[
        str | None, typer.Option("--command-line", help="Command to run, split like a shell would.")
    ] = None,
    environment_variables: Annotated[
        list[str] | None, typer.Option("--environment-variables", "-e", help="KEY=VALUE (repeatable).")
    ] = None,
    secure_environment_variables: Annotated[
        list[str] | None,
        typer.Option("--secure-environment-variables", help="KEY=VALUE, never shown again (repeatable)."),
    ] = None,
    restart_policy: Annotated[
        RestartPolicy, typer.Option("--restart-policy", case_sensitive=False)
    ] = RestartPolicy.ALWAYS,
    os_type: Annotated[OsType, typer.Option("--os-type", case_sensitive=False)] = OsType.LINUX,
    no_wait: NoWaitOption = False,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Create a container group with one container (az container create)."""
    spec = GroupSpec(
        name=name,
        location=location or "",
        image=image,
        cpu=cpu,
        memory=memory,
        ports=parse_ports(ports),
        protocol=protocol,
        ip_address=ip_address,
        dns_name_label=dns_name_label,
        command_line=command_line,
        environment=key_values(environment_variables or [], "--environment-variables"),
        secure_environment=key_values(secure_environment_variables or [], "--secure-environment-variables"),
        restart_policy=restart_policy,
        os_type=os_type,
        registry=RegistryLogin(registry_login_server, registry_username, registry_password),
    )
    result = run(
        home, lambda c: _create(c, group, spec, assign_identity or [], acr_identity, wait=not no_wait)
    )
    emit(result, output, GROUP_TABLE)


@app.command("show")
def show(
    name: NameOption, group: GroupOption, output: OutputOption = OutputFormat.JSON, home: HomeOption = None
) -> None:
    """Show a container group with its instance view (az container show)."""
    emit(run(home, lambda c: ContainerGroups(c).get(group, name)), output, GROUP_TABLE)


@app.command("list")
def list_(
    group: Annotated[
        str | None, typer.Option("--resource-group", "-g", help="Resource group (default: all).")
    ] = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """List container groups (az container list)."""
    emit(run(home, lambda c: ContainerGroups(c).list(group)), output, GROUP_TABLE)


@app.command("delete")
def delete(
    name: NameOption,
    group: GroupOption,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Delete a container group; prints it (az container delete)."""
    confirm(f"Are you sure you want to delete the container group '{name}'?", yes)
    emit(run(home, lambda c: ContainerGroups(c).delete(group, name)), output, GROUP_TABLE)


def _action(name: str, group: str, action: Literal["start", "stop", "restart"], home: Path | None) -> None:
    run(home, lambda c: ContainerGroups(c).action(group, name, action))


@app.command("start")
def start(
    name: NameOption,
    group: GroupOption,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; prints nothing
    home: HomeOption = None,
) -> None:
    """Start a stopped group (re-checks its images) and wait until it runs (az container start)."""
    _action(name, group, "start", home)


@app.command("stop")
def stop(
    name: NameOption,
    group: GroupOption,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; prints nothing
    home: HomeOption = None,
) -> None:
    """Stop a group's containers (az container stop)."""
    _action(name, group, "stop", home)


@app.command("restart")
def restart(
    name: NameOption,
    group: GroupOption,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; prints nothing
    home: HomeOption = None,
) -> None:
    """Restart a group's containers and wait until they run (az container restart)."""
    _action(name, group, "restart", home)


async def _container_name(groups: ContainerGroups, group: str, name: str, container: str | None) -> str:
    """``--container-name``, else the container named after the group, else the first one."""
    if container:
        return container
    names = [
        str(c.get("name")) for c in path_get(await groups.get(group, name), "properties.containers") or []
    ]
    if not names:
        raise UsageError(f"the container group '{name}' has no containers.")
    return name if name in names else names[0]


ContainerNameOption = Annotated[
    str | None, typer.Option("--container-name", help="Container (default: the group's own or the first).")
]


@app.command("logs")
def logs(
    *,
    name: NameOption,
    group: GroupOption,
    container_name: ContainerNameOption = None,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N lines.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep printing new output until it stops.")
    ] = False,
    output: Annotated[
        OutputFormat | None,
        typer.Option(
            "--output", "-o", case_sensitive=False, help="Default: the log text as is; json etc.: {content}."
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print a container's logs (az container logs)."""
    if follow and output is not None:
        fail("--follow streams the log text; --output does not apply.")

    async def go(client: MoorageClient) -> ArmBody | None:
        groups = ContainerGroups(client)
        container = await _container_name(groups, group, name, container_name)
        if follow:
            await _follow(groups, group, name, container, tail)
            return None
        return await groups.logs(group, name, container, tail=tail)

    body = run(home, go)
    if body is None:
        return
    if output is None:
        sys.stdout.write(str(body.get("content") or ""))
    else:
        emit(body, output, LOGS_TABLE)


async def _follow(groups: ContainerGroups, group: str, name: str, container: str, tail: int | None) -> None:
    """Print the log, then what is appended to it, until the container has stopped for good."""
    shown = ""
    first = True
    while True:
        content = str(
            (await groups.logs(group, name, container, tail=tail if first else None)).get("content") or ""
        )
        if first:
            sys.stdout.write(content)
            # With --tail, what was shown is the end of the full log: find it there next time.
            shown = str((await groups.logs(group, name, container)).get("content") or "") if tail else content
        elif content.startswith(shown):
            sys.stdout.write(content[len(shown) :])
            shown = content
        else:
            sys.stdout.write(content)  # the log was replaced (a new sandbox): show it whole
            shown = content
        sys.stdout.flush()
        first = False
        current = await groups.get(group, name)
        if _status(current) in ("Stopped", "Succeeded", "Failed"):
            return
        await asyncio.sleep(1.0)


@app.command("exec")
def exec_(
    *,
    name: NameOption,
    group: GroupOption,
    exec_command: Annotated[
        str, typer.Option("--exec-command", help="The command, e.g. 'cat /etc/hostname'.")
    ],
    container_name: ContainerNameOption = None,
    output: Annotated[
        OutputFormat | None,
        typer.Option("--output", "-o", case_sensitive=False, help="Not applicable: streams."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Run a command in a running container and print its output (az container exec, without
    an interactive terminal). Exit code 1 also when the command itself exits non-zero."""
    if output is not None:
        fail("exec streams the command's output; --output does not apply.")
    terminal = shutil.get_terminal_size(fallback=(200, 50))
    raw = sys.stdout.isatty()

    def show(message: str | bytes) -> None:
        if isinstance(message, bytes):
            sys.stdout.buffer.write(message)
        else:
            # The command runs on a terminal (\r\n line ends); a file or pipe wants plain lines.
            sys.stdout.write(message if raw else message.replace("\r\n", "\n"))
        sys.stdout.flush()

    async def go(client: MoorageClient) -> int | None:
        groups = ContainerGroups(client)
        container = await _container_name(groups, group, name, container_name)
        session = await groups.exec_session(
            group, name, container, exec_command, rows=terminal.lines, cols=terminal.columns
        )
        return (await run_exec_session(client, session, show)).exit_code

    code = run(home, go)
    if code:
        fail(f"(CommandFailed) '{exec_command}' exited with code {code}.", EXIT_REFUSED)
