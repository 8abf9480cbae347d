"""``ExecSessions`` over the fake runtime: issuing, redeeming (one time, constant-time password,
expiry), running exec and attach sessions, and the command/terminal-size rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from moorage.core.errors import InvalidArgument, QuotaExceeded
from moorage.instances.exec_sessions import (
    ChannelClosed,
    ExecSessionRejected,
    ExecSessions,
    SessionKind,
    check_terminal_size,
    split_command,
)
from moorage.instances.runtime.base import ContainerNotRunning, ContainerSpec, SandboxSpec, TerminalSize
from moorage.instances.runtime.fake import FakeRuntime
from moorage.instances.service import ContainerGroup


class SteppedClock:
    def __init__(self) -> None:
        self.now_s = 1_000_000.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_s, UTC)

    def timestamp(self) -> float:
        return self.now_s


class NoGroups:
    async def get(self, resource_id: str) -> ContainerGroup | None:
        return None


class Client:
    """A session's client end: records output, hands over typed input, can leave."""

    def __init__(self) -> None:
        self.output = bytearray()
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.gone = False

    async def send(self, data: bytes) -> None:
        if self.gone:
            raise ChannelClosed
        self.output += data

    async def receive(self) -> bytes | None:
        return await self._inbox.get()

    def type(self, data: bytes) -> None:
        self._inbox.put_nowait(data)

    def leave(self) -> None:
        self.gone = True
        self._inbox.put_nowait(None)


@dataclass
class Env:
    runtime: FakeRuntime
    clock: SteppedClock
    sessions: ExecSessions
    container_id: str


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    runtime = FakeRuntime()
    await runtime.create_sandbox(SandboxSpec(id="sb", hostname="group1"))
    spec = ContainerSpec(
        id="c1", sandbox_id="sb", rootfs_layers=[tmp_path], args=["sleep", "1000"], env=["GREETING=hi"]
    )
    await runtime.create(spec)
    await runtime.start("c1")
    clock = SteppedClock()
    sessions = ExecSessions(runtime, NoGroups(), clock, ttl_s=120, max_pending=3)
    yield Env(runtime, clock, sessions, "c1")
    await sessions.close()
    await runtime.delete_sandbox("sb")


def _exec(env: Env, *args: str) -> tuple[str, str]:
    issued = env.sessions.open(SessionKind.EXEC, env.container_id, label="g/c", args=args)
    return issued.id, issued.password


# -- redeeming ----------------------------------------------------------------------------------------


async def test_the_right_password_redeems_the_session_once(env: Env) -> None:
    session_id, password = _exec(env, "echo", "hi")
    session = env.sessions.redeem(session_id, password, SessionKind.EXEC)
    assert (session.container_id, session.args, session.size) == ("c1", ("echo", "hi"), TerminalSize(24, 80))
    with pytest.raises(ExecSessionRejected):
        env.sessions.redeem(session_id, password, SessionKind.EXEC)


async def test_a_wrong_password_spends_the_session(env: Env) -> None:
    session_id, password = _exec(env, "true")
    with pytest.raises(ExecSessionRejected):
        env.sessions.redeem(session_id, password + "x", SessionKind.EXEC)
    with pytest.raises(ExecSessionRejected):
        env.sessions.redeem(session_id, password, SessionKind.EXEC)


async def test_an_unused_session_expires(env: Env) -> None:
    session_id, password = _exec(env, "true")
    env.clock.now_s += 120
    with pytest.raises(ExecSessionRejected):
        env.sessions.redeem(session_id, password, SessionKind.EXEC)


async def test_a_session_redeems_only_as_its_kind(env: Env) -> None:
    session_id, password = _exec(env, "true")
    with pytest.raises(ExecSessionRejected):
        env.sessions.redeem(session_id, password, SessionKind.ATTACH)


async def test_refusals_do_not_say_why(env: Env) -> None:
    session_id, password = _exec(env, "true")
    messages = set()
    for sid, pw in ((session_id, "wrong"), (session_id, password), ("unknown", password)):
        with pytest.raises(ExecSessionRejected) as info:
            env.sessions.redeem(sid, pw, SessionKind.EXEC)
        messages.add((info.value.code, info.value.message))
    assert len(messages) == 1


async def test_passwords_are_random_and_not_in_the_repr(env: Env) -> None:
    first = env.sessions.open(SessionKind.EXEC, "c1", label="g/c", args=["true"])
    second = env.sessions.open(SessionKind.EXEC, "c1", label="g/c", args=["true"])
    assert first.password != second.password
    assert first.id != second.id
    assert len(first.password) >= 40
    assert first.password not in repr(first)


async def test_too_many_unused_sessions_are_refused_until_some_expire(env: Env) -> None:
    for _ in range(3):
        _exec(env, "true")
    with pytest.raises(QuotaExceeded):
        _exec(env, "true")
    env.clock.now_s += 121
    _exec(env, "true")  # the expired ones made room


# -- running -----------------------------------------------------------------------------------------


async def _run(env: Env, client: Client, *args: str) -> int | None:
    session_id, password = _exec(env, *args)
    session = env.sessions.redeem(session_id, password, SessionKind.EXEC)
    return await asyncio.wait_for(env.sessions.run(session, client), 10)


async def test_exec_relays_output_and_returns_the_exit_code(env: Env) -> None:
    client = Client()
    assert await _run(env, client, "sh", "-c", "echo $GREETING; exit 4") == 4
    assert bytes(client.output) == b"hi\r\n"


async def test_exec_relays_typed_input(env: Env) -> None:
    client = Client()
    client.type(b"abc\r")
    client.type(b"\x04")
    assert await _run(env, client, "cat") == 0
    assert bytes(client.output) == b"abc\r\nabc\r\n"


async def test_a_client_that_leaves_ends_the_process(env: Env) -> None:
    client = Client()
    run = asyncio.ensure_future(_run(env, client, "sleep", "1000"))
    await asyncio.sleep(0.05)
    client.leave()
    assert await asyncio.wait_for(run, 5) is None


async def test_exec_in_a_stopped_container_fails_when_run(env: Env) -> None:
    session_id, password = _exec(env, "true")
    session = env.sessions.redeem(session_id, password, SessionKind.EXEC)
    await env.runtime.stop("c1", grace_s=0)
    with pytest.raises(ContainerNotRunning):
        await env.sessions.run(session, Client())


async def test_attach_relays_new_output_until_the_container_exits(env: Env, tmp_path: Path) -> None:
    spec = ContainerSpec(
        id="c2",
        sandbox_id="sb",
        rootfs_layers=[tmp_path],
        args=["sh", "-c", "echo early; sleep 0.3; echo late"],
    )
    await env.runtime.create(spec)
    await env.runtime.start("c2")
    issued = env.sessions.open(SessionKind.ATTACH, "c2", label="g/c2")
    session = env.sessions.redeem(issued.id, issued.password, SessionKind.ATTACH)
    client = Client()
    assert await asyncio.wait_for(env.sessions.run(session, client), 10) is None
    assert bytes(client.output) == b"late\n"


async def test_close_ends_running_sessions(env: Env) -> None:
    client = Client()
    run = asyncio.ensure_future(_run(env, client, "sleep", "1000"))
    await asyncio.sleep(0.05)
    await env.sessions.close()
    await asyncio.wait({run}, timeout=5)
    assert run.cancelled()


# -- the request's rules -----------------------------------------------------------------------------


def test_commands_split_on_whitespace_only() -> None:
    assert split_command("  echo   'a  b'\tc\n") == ("echo", "'a", "b'", "c")


@pytest.mark.parametrize("command", ["", "   ", "x" * 8193])
def test_empty_or_huge_commands_are_refused(command: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        split_command(command)
    assert (info.value.code, info.value.target) == ("InvalidParameter", "command")


@pytest.mark.parametrize(("rows", "cols", "target"), [(-1, 80, "rows"), (24, 65536, "cols"), (2, -5, "cols")])
def test_terminal_sizes_outside_the_kernels_range_are_refused(rows: int, cols: int, target: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_terminal_size(rows, cols)
    assert info.value.target == f"terminalSize.{target}"


def test_terminal_size_bounds_are_accepted() -> None:
    assert check_terminal_size(1, 65535) == TerminalSize(1, 65535)


def test_a_zero_side_is_unknown_and_takes_the_default() -> None:
    # What az container exec sends from a terminal that was never sized.
    assert check_terminal_size(0, 0) == TerminalSize(24, 80)
    assert check_terminal_size(0, 132) == TerminalSize(24, 132)
