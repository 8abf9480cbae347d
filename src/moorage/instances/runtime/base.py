"""The runtime contract: what every backend (``fake``, ``runc``, later ``kubernetes``) provides.

A *sandbox* is a container group's shared environment: one network namespace (the group's
containers reach each other on localhost), its address, its published host ports, and its
generated ``/etc/hosts`` and ``/etc/resolv.conf``. *Containers* run inside a sandbox from a
rootfs made of read-only snapshot directories (lowest last) plus a private writable layer.

Every backend passes the same contract suite (``tests/contract/test_runtime.py``). Methods raise
:class:`RuntimeFailure` (or ``NotFound`` for unknown ids); they never leave half-created state
behind when they raise. State of record lives on disk (runc's state, conmon's exit files), so a
control-plane restart loses nothing: :meth:`Runtime.containers` rediscovers what is running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from moorage.core.errors import AlreadyExists, Conflict, MoorageError, NotFound


class RuntimeFailure(MoorageError):
    """The runtime could not do what was asked (runc/conmon/CNI/nft failed); ``message`` carries
    the tool's own error text."""

    default_code = "RuntimeFailure"


class ExecTimeout(RuntimeFailure):
    """An exec'd process outlived its timeout; it has been killed."""

    default_code = "ExecTimeout"


class ContainerNotFound(NotFound):
    default_code = "ContainerNotFound"


class ContainerAlreadyExists(AlreadyExists):
    default_code = "ContainerAlreadyExists"


class ContainerNotRunning(Conflict):
    """The operation (``exec``) needs a running container."""

    default_code = "ContainerNotRunning"


class SandboxNotFound(NotFound):
    default_code = "SandboxNotFound"


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    protocol: str = "TCP"  # TCP | UDP
    host_port: int | None = None  # None: same as container_port (ACI has no port mapping)
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class Volume:
    """A group-level volume that the group's containers mount by name (:class:`VolumeMount`).

    ``emptyDir``: an empty writable directory shared by the group, removed with the sandbox.
    ``secret``: ``files`` (flat names → content) on a memory-backed filesystem, never on disk,
    always mounted read-only.
    """

    name: str
    kind: str = "emptyDir"  # emptyDir | secret
    files: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxSpec:
    id: str  # unique, [a-z0-9-]{1,40}
    hostname: str
    ports: Sequence[PortMapping] = ()
    dns_servers: Sequence[str] = ()
    dns_search: Sequence[str] = ()
    extra_hosts: Sequence[tuple[str, str]] = ()  # (ip, name)
    volumes: Sequence[Volume] = ()


@dataclass(frozen=True)
class Sandbox:
    id: str
    ip: str | None  # the group's address on the bridge (None for the fake backend)
    ports: Sequence[PortMapping]
    netns: str | None  # path of the network namespace


@dataclass(frozen=True)
class Mount:
    source: Path
    destination: str
    read_only: bool = False
    kind: str = "bind"  # bind | tmpfs


@dataclass(frozen=True)
class VolumeMount:
    """Mounts the sandbox's volume ``volume`` at ``destination`` (secret volumes are always
    read-only)."""

    volume: str
    destination: str
    read_only: bool = False


@dataclass(frozen=True)
class Resources:
    cpu: float | None = None  # cores (ACI "cpu"), enforced as a CFS quota
    memory_bytes: int | None = None  # hard limit; exceeding it is an OOM kill
    pids: int | None = None


@dataclass(frozen=True)
class ContainerSecurity:
    """Privileges of a container's process. Capability names are upper case without the ``CAP_``
    prefix; ``capabilities_drop`` may hold ``ALL``. Backends start from Docker's default set
    (:func:`~moorage.instances.runtime.specs.capability_set` computes the result).
    ``no_new_privileges`` stops the process (and its children) from gaining privileges through
    setuid/setgid binaries or file capabilities."""

    capabilities_add: Sequence[str] = ()
    capabilities_drop: Sequence[str] = ()
    no_new_privileges: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    id: str  # unique, [a-z0-9-]{1,63}
    sandbox_id: str
    rootfs_layers: Sequence[Path]  # read-only snapshot dirs, TOP layer FIRST
    args: Sequence[str]
    env: Sequence[str] = ()  # KEY=value
    cwd: str = "/"
    user: str | None = None  # "uid[:gid]" or a name resolved from the rootfs /etc/passwd
    mounts: Sequence[Mount] = ()
    volume_mounts: Sequence[VolumeMount] = ()  # the sandbox's volumes, by name
    resources: Resources = field(default_factory=Resources)
    stop_grace_s: float = 10.0
    security: ContainerSecurity = field(default_factory=ContainerSecurity)


class ContainerStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"  # exited; exit_code set (None when it could not be learnt)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContainerState:
    id: str
    sandbox_id: str
    status: ContainerStatus
    pid: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    stream: str  # stdout | stderr
    text: str


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class TerminalSize:
    """A pseudo-terminal's size in character cells (what ``TIOCSWINSZ`` sets)."""

    rows: int = 24
    cols: int = 80


class ExecProcess(Protocol):
    """A process started by :meth:`Runtime.exec_terminal`, attached to a pseudo-terminal of its own.

    Its stdout and stderr are the terminal's output, merged and with the terminal's ``\\r\\n`` line
    ends; its stdin is the terminal's input, with the usual line discipline: input is echoed,
    ``\\r`` becomes ``\\n``, Ctrl-D at the start of a line ends the input, Ctrl-C interrupts the
    process. ``TERM`` is ``xterm`` unless the container's environment sets it.
    """

    async def read(self) -> bytes:
        """The next chunk of output, waiting for one; ``b""`` once the process has exited and
        everything it wrote has been read."""

    async def write(self, data: bytes) -> None:
        """Type ``data`` into the terminal; ignored once the process has exited."""

    async def wait(self) -> int:
        """Wait for the process to exit; its exit code (``128+n`` for a signal ``n``)."""

    async def kill(self) -> None:
        """SIGKILL the process unless it has exited, wait for it and release the terminal.
        Idempotent; after it, :meth:`read` returns ``b""``."""


class Runtime(Protocol):
    """The runtime-neutral operations. All are idempotent where the name suggests it
    (``delete`` of a deleted container is a no-op)."""

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox: ...

    async def delete_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and everything it holds (netns, addresses, host ports)."""

    async def sandboxes(self) -> list[Sandbox]: ...

    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Prepare the container (rootfs, cgroup, supervisor) without starting its process."""

    async def start(self, container_id: str) -> ContainerState:
        """Start a created container's process; ``Conflict`` (``ContainerNotCreated``) otherwise."""

    async def kill(self, container_id: str, signal: int) -> None:
        """Send ``signal`` to the container's init (PID 1: only SIGKILL and signals it handles
        have an effect). A no-op once it has exited."""

    async def stop(self, container_id: str, grace_s: float | None = None) -> ContainerState:
        """SIGTERM, wait ``grace_s`` (default: the spec's), then SIGKILL; return the final state."""

    async def delete(self, container_id: str) -> None:
        """Remove a stopped (or, forcibly, a running) container and all its files and mounts."""

    async def state(self, container_id: str) -> ContainerState: ...

    async def wait(self, container_id: str, timeout_s: float | None = None) -> ContainerState:
        """Block until the container has exited (or the timeout passes); return its state."""

    async def containers(self) -> list[ContainerState]:
        """Every container this runtime knows, including ones started before a restart."""

    async def logs(self, container_id: str, *, tail: int | None = None) -> list[LogLine]: ...

    async def exec(self, container_id: str, args: Sequence[str], *, timeout_s: float = 30.0) -> ExecResult:
        """Run ``args`` inside the running container (its env, cwd and user), stdin closed.

        Raises :class:`ContainerNotRunning` unless it runs, :class:`ExecTimeout` (after killing the
        process) when it outlives ``timeout_s``. A missing executable is exit code 127, like a
        shell's "not found"."""

    async def exec_terminal(
        self, container_id: str, args: Sequence[str], *, size: TerminalSize
    ) -> ExecProcess:
        """Start ``args`` inside the running container (its env, cwd and user) on a new
        pseudo-terminal of ``size`` (see :class:`ExecProcess`); the caller must :meth:`~ExecProcess.
        kill` or drain it. Raises :class:`ContainerNotRunning` unless the container runs. A
        missing executable exits with 127 and says so in the output."""

    def follow_logs(self, container_id: str) -> AsyncIterator[LogLine]:
        """The lines the container writes to stdout/stderr from now on, as they are written; the
        iteration ends once the container has exited and its last lines have been yielded.
        Raises :class:`ContainerNotFound` (on the first iteration) for an unknown id."""


__all__ = [
    "ContainerAlreadyExists",
    "ContainerNotFound",
    "ContainerNotRunning",
    "ContainerSpec",
    "ContainerState",
    "ContainerStatus",
    "ExecProcess",
    "ExecResult",
    "ExecTimeout",
    "LogLine",
    "Mount",
    "PortMapping",
    "Resources",
    "Runtime",
    "RuntimeFailure",
    "Sandbox",
    "SandboxNotFound",
    "SandboxSpec",
    "TerminalSize",
    "Volume",
    "VolumeMount",
]
