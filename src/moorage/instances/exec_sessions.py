"""Exec and attach sessions: what ACI's ``containers/{c}/exec`` and ``containers/{c}/attach``
hand out, and what runs when the client connects.

ACI answers those POSTs with ``{webSocketUri, password}``; the client opens the websocket, proves
itself with the password and then talks to the process. Here a session is issued by
:meth:`ExecSessions.open` and *redeemed* by the websocket edge with :meth:`ExecSessions.redeem`:

* **One time.** A session is bound to one container instance and one command, and is spent by
  the first redemption attempt, right or wrong: a wrong password does not leave a session to
  guess at. Unused sessions expire after ``ttl_s`` (120 s by default).
* **Secret.** The password (32 random bytes, URL-safe) is returned once and kept only as a
  SHA-256 digest, compared in constant time; it is never logged. Every refusal is the same
  :class:`ExecSessionRejected`, so a client cannot tell an unknown session from a used one.
* **Exec** runs the command on a pseudo-terminal of the requested size (:meth:`Runtime.
  exec_terminal`): output is relayed as it comes, input typed by the client goes to the
  terminal, and the session ends when the process exits (its exit code is returned) or when
  the client goes away (the process is killed).
* **Attach** relays the container's output from the moment of connection (one log line per
  chunk, ``\\n``-terminated) until the container exits or the client goes away; input is
  ignored.

**The command string** is split as ACI splits it: on whitespace, with no quoting or escapes, so
``echo hello world`` runs ``echo`` with two arguments, while ``sh -c "echo a; echo b"`` does not
do what a shell would (start ``sh`` and type into it instead).

Sessions live in memory: a restart of the server forgets them (and a running session's client
loses its connection anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from moorage.core.clock import Clock
from moorage.core.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, QuotaExceeded
from moorage.core.log import get_logger
from moorage.instances.runtime.base import (
    ContainerNotFound,
    ContainerStatus,
    ExecProcess,
    Runtime,
    TerminalSize,
)
from moorage.instances.service import RUNNING, ContainerGroup

log = get_logger("instances.exec")

SESSION_TTL_S = 120.0
MAX_PENDING = 256  # unused sessions at a time; more is a client opening sessions in a loop
MAX_COMMAND_LENGTH = 8192
MAX_TERMINAL_SIDE = 65535  # rows and columns are unsigned shorts in the kernel's winsize


class SessionKind(StrEnum):
    EXEC = "exec"
    ATTACH = "attach"


class ExecSessionRejected(PermissionDenied):
    """The session is unknown, expired or spent, or the password is wrong (deliberately one
    error for all four)."""

    default_code = "ExecSessionRejected"


class ContainerGroupNotRunning(Conflict):
    default_code = "ContainerGroupNotRunning"


class TargetNotRunning(Conflict):
    """The container to exec in (attach to) exists but does not run."""

    default_code = "ContainerNotRunning"


class ChannelClosed(Exception):
    """The client's end of a session has gone."""


class Channel(Protocol):
    """The client's end of a running session (the websocket edge implements it)."""

    async def send(self, data: bytes) -> None:
        """Relay output to the client; raises :class:`ChannelClosed` once it has gone."""

    async def receive(self) -> bytes | None:
        """The next input from the client; ``None`` once it has gone."""


class GroupDirectory(Protocol):
    """Where container groups are looked up (:class:`~moorage.instances.service.ContainerGroups`)."""

    async def get(self, resource_id: str) -> ContainerGroup | None: ...


@dataclass(frozen=True)
class IssuedSession:
    """What the client is given: the session's id (part of the websocket's URL) and password."""

    id: str
    kind: SessionKind
    password: str = field(repr=False)


@dataclass(frozen=True)
class Session:
    """A redeemed session, ready to :meth:`ExecSessions.run`."""

    id: str
    kind: SessionKind
    container_id: str
    args: tuple[str, ...]
    size: TerminalSize
    label: str  # "<group>/<container>", for logs


@dataclass(frozen=True)
class _Pending:
    session: Session
    digest: bytes = field(repr=False)
    expires_at: float


def split_command(command: str) -> tuple[str, ...]:
    """ACI's reading of the exec ``command``: whitespace-separated words, no quoting.

    Raises ``InvalidArgument`` (``InvalidParameter``, target ``command``) for an empty or
    oversized command."""
    if len(command) > MAX_COMMAND_LENGTH:
        raise InvalidArgument(
            f"The command is too long: {len(command)} characters, at most {MAX_COMMAND_LENGTH}.",
            code="InvalidParameter",
            target="command",
        )
    words = tuple(command.split())
    if not words:
        raise InvalidArgument(
            "The command to execute must not be empty.", code="InvalidParameter", target="command"
        )
    return words


def check_terminal_size(rows: int, cols: int) -> TerminalSize:
    """``TerminalSize(rows, cols)``, where 0 means unknown and takes the default (24 rows, 80
    columns): ``az container exec`` sends what its own terminal reports, 0x0 on a terminal that
    was never sized. ``InvalidArgument`` (``InvalidParameter``, target ``terminalSize.rows``/
    ``.cols``) unless both are between 0 and 65535."""
    for name, value in (("rows", rows), ("cols", cols)):
        if not 0 <= value <= MAX_TERMINAL_SIDE:
            raise InvalidArgument(
                f"The value '{value}' of 'terminalSize.{name}' is invalid; it must be an integer "
                f"between 0 and {MAX_TERMINAL_SIDE}.",
                code="InvalidParameter",
                target=f"terminalSize.{name}",
            )
    default = TerminalSize()
    return TerminalSize(rows=rows or default.rows, cols=cols or default.cols)


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()


class ExecSessions:
    """Issues, redeems and runs exec/attach sessions (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        groups: GroupDirectory,
        clock: Clock,
        *,
        ttl_s: float = SESSION_TTL_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"the exec session lifetime must be positive, got {ttl_s}")
        self._runtime = runtime
        self._groups = groups
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_pending = max_pending
        self._pending: dict[str, _Pending] = {}
        self._running: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ issuing

    async def running_container(self, group_id: str, container: str) -> tuple[ContainerGroup, str]:
        """The group and the runtime id of its container ``container``, which must be running.

        Raises ``NotFound`` (``ResourceNotFound`` for the group, ``ContainerNotFound``),
        :class:`ContainerGroupNotRunning` unless the group's state is Running, and
        :class:`TargetNotRunning` when the container itself has exited (or is an init
        container)."""
        group = await self._groups.get(group_id)
        if group is None:
            raise NotFound(f"The container group '{group_id}' was not found.", code="ResourceNotFound")
        names = {c.name for c in group.definition.containers}
        init_names = {c.name for c in group.definition.init_containers}
        if container not in names | init_names:
            raise NotFound(
                f"The container '{container}' does not exist in container group '{group.name}'.",
                code="ContainerNotFound",
                target=container,
            )
        if group.state != RUNNING:
            raise ContainerGroupNotRunning(
                f"The container group '{group.name}' is not running (its state is '{group.state}'); "
                "start it first."
            )
        container_id = group.view(container).get("_id") if container in names else None
        state = None
        if container_id:
            with contextlib.suppress(ContainerNotFound):
                state = await self._runtime.state(str(container_id))
        if state is None or state.status is not ContainerStatus.RUNNING:
            raise TargetNotRunning(
                f"The container '{container}' in container group '{group.name}' is not running.",
                target=container,
            )
        return group, str(container_id)

    def open(
        self,
        kind: SessionKind,
        container_id: str,
        *,
        label: str,
        args: Sequence[str] = (),
        size: TerminalSize | None = None,
    ) -> IssuedSession:
        """Issue a session for ``container_id`` (an exec of ``args`` on a terminal of ``size``,
        or an attach). Raises ``QuotaExceeded`` when too many sessions wait to be used."""
        if kind is SessionKind.EXEC and not args:
            raise InvalidArgument("The command to execute must not be empty.", code="InvalidParameter")
        self._expire()
        if len(self._pending) >= self._max_pending:
            raise QuotaExceeded(
                f"Too many exec and attach sessions wait to be used ({self._max_pending}); "
                f"retry once some have been used or expired ({int(self._ttl_s)} s).",
                code="TooManyExecSessions",
            )
        session_id = secrets.token_urlsafe(18)
        password = secrets.token_urlsafe(32)
        session = Session(session_id, kind, container_id, tuple(args), size or TerminalSize(), label)
        self._pending[session_id] = _Pending(
            session, _digest(password), self._clock.timestamp() + self._ttl_s
        )
        log.info(
            "exec session issued",
            session=session_id,
            kind=kind.value,
            target=label,
            program=args[0] if args else None,
        )
        return IssuedSession(session_id, kind, password)

    def _expire(self) -> None:
        now = self._clock.timestamp()
        for session_id in [i for i, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[session_id]

    # ------------------------------------------------------------------ redeeming

    def redeem(self, session_id: str, password: str, kind: SessionKind) -> Session:
        """Spend the session: the :class:`Session` when ``password`` is right, it has not
        expired and it is of ``kind``; :class:`ExecSessionRejected` otherwise. Either way the
        session cannot be redeemed again."""
        pending = self._pending.pop(session_id, None)
        # Compared even for an unknown session, so the answer takes the same time.
        expected = pending.digest if pending is not None else _digest(secrets.token_urlsafe(32))
        matches = hmac.compare_digest(expected, _digest(password))
        reason = None
        if pending is None:
            reason = "unknown or already used"
        elif pending.expires_at <= self._clock.timestamp():
            reason = "expired"
        elif pending.session.kind is not kind:
            reason = "wrong kind"
        elif not matches:
            reason = "wrong password"
        if reason is not None or pending is None:
            log.warning("exec session refused", session=session_id, reason=reason)
            raise ExecSessionRejected(
                "The session does not exist, has expired or was used already, or the password is wrong."
            )
        log.info("exec session redeemed", session=session_id, target=pending.session.label)
        return pending.session

    # ------------------------------------------------------------------ running

    async def run(self, session: Session, channel: Channel) -> int | None:
        """Run the session until the process (exec) or the container (attach) ends, or the
        client goes away. Returns the exec'd process's exit code (None for attach, and when the
        client left first). Raises the runtime's ``ContainerNotRunning``/``RuntimeFailure``
        when the process cannot be started."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            if session.kind is SessionKind.EXEC:
                code = await self._run_exec(session, channel)
            else:
                code = await self._run_attach(session, channel)
        finally:
            if task is not None:
                self._running.discard(task)
        log.info(
            "exec session ended", session=session.id, exit_code=code, seconds=round(loop.time() - began, 3)
        )
        return code

    async def _run_exec(self, session: Session, channel: Channel) -> int | None:
        process = await self._runtime.exec_terminal(session.container_id, session.args, size=session.size)
        try:
            return await _relay(process, channel)
        finally:
            await process.kill()

    async def _run_attach(self, session: Session, channel: Channel) -> int | None:
        async def output() -> None:
            async for line in self._runtime.follow_logs(session.container_id):
                await channel.send(line.text.encode("utf-8", "surrogateescape") + b"\n")

        async def input_until_gone() -> None:
            while await channel.receive() is not None:
                pass  # attach relays output only

        await _first_of(output(), input_until_gone())
        return None

    async def close(self) -> None:
        """Forget pending sessions and end running ones (their processes are killed)."""
        self._pending.clear()
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(BaseException):
                await task


async def _relay(process: ExecProcess, channel: Channel) -> int | None:
    """Output to the client and input to the process until the output ends (the exit code) or
    the client goes (None)."""
    ended = False

    async def output() -> None:
        nonlocal ended
        while chunk := await process.read():
            await channel.send(chunk)
        ended = True

    async def input_until_gone() -> None:
        while (data := await channel.receive()) is not None:
            await process.write(data)

    await _first_of(output(), input_until_gone())
    return await process.wait() if ended else None


async def _first_of(*work: Coroutine[Any, Any, None]) -> None:
    """Run coroutines until the first one finishes (or the client's end closes: a
    :class:`ChannelClosed` ends the race quietly); cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, ChannelClosed):
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
