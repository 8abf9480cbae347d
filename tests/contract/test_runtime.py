"""The Runtime contract, run against every backend: the in-memory fake and runc (root only).

Commands stick to what the fake simulates (see ``moorage.instances.runtime.fake``) with busybox
semantics, so each test means the same thing on both backends.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moorage.core.errors import AlreadyExists, Conflict, InvalidArgument
from moorage.instances.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerSecurity,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ExecProcess,
    ExecTimeout,
    Resources,
    Runtime,
    RuntimeFailure,
    SandboxNotFound,
    SandboxSpec,
    TerminalSize,
)
from moorage.instances.runtime.fake import FakeRuntime
from moorage.instances.runtime.specs import DEFAULT_CAPABILITIES, capability_mask
from tests.runtime_support import LoopbackNetwork, build_busybox_rootfs, runc_unavailable, unique_prefix

RUNC_UNAVAILABLE = runc_unavailable()
MiB = 1 << 20
FOREVER = ["sleep", "1000"]
TERM_HANDLER = ["sh", "-c", "trap 'exit 143' TERM; sleep 1000 & wait"]


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@dataclass
class Env:
    """A runtime with one sandbox, and a spec builder for containers in it."""

    runtime: Runtime
    sandbox_id: str
    layers: Sequence[Path]

    def spec(self, args: Sequence[str], *, id: str | None = None, **kwargs: Any) -> ContainerSpec:
        return ContainerSpec(
            id=id or f"c-{secrets.token_hex(3)}",
            sandbox_id=kwargs.pop("sandbox_id", self.sandbox_id),
            rootfs_layers=self.layers,
            args=args,
            **kwargs,
        )

    async def run(self, args: Sequence[str], **kwargs: Any) -> ContainerState:
        state = await self.runtime.create(self.spec(args, **kwargs))
        return await self.runtime.start(state.id)


@pytest.fixture(
    params=[
        "fake",
        pytest.param(
            "runc",
            marks=[
                pytest.mark.root,
                pytest.mark.skipif(RUNC_UNAVAILABLE is not None, reason=f"{RUNC_UNAVAILABLE}"),
            ],
        ),
    ]
)
async def env(request: pytest.FixtureRequest, tmp_path: Path, busybox_rootfs: Path) -> AsyncIterator[Env]:
    runtime: Runtime
    if request.param == "fake":
        runtime = FakeRuntime()
    else:
        from moorage.instances.runtime.runc import RuncRuntime  # noqa: PLC0415 - root-only backend

        prefix = unique_prefix()
        runtime = RuncRuntime(
            tmp_path / "state", network=LoopbackNetwork(tmp_path / "net", prefix), prefix=prefix
        )
    sandbox = await runtime.create_sandbox(SandboxSpec(id=f"sb-{secrets.token_hex(3)}", hostname="group1"))
    try:
        yield Env(runtime, sandbox.id, [busybox_rootfs])
    finally:
        for s in await runtime.sandboxes():
            await runtime.delete_sandbox(s.id)
        for c in await runtime.containers():
            await runtime.delete(c.id)


async def test_created_then_started_then_exits_with_its_code(env: Env) -> None:
    rt = env.runtime
    created = await rt.create(env.spec(["sh", "-c", "exit 3"]))
    assert created.status is ContainerStatus.CREATED
    assert created.pid
    assert created.sandbox_id == env.sandbox_id
    await rt.start(created.id)
    final = await rt.wait(created.id, 10)
    assert final.status is ContainerStatus.STOPPED
    assert final.exit_code == 3
    assert not final.oom_killed
    assert final.started_at is not None
    assert final.finished_at is not None
    assert final.finished_at >= final.started_at


async def test_args_reach_the_process_and_stdout_is_logged(env: Env) -> None:
    state = await env.run(["echo", "hello", "world"])
    assert (await env.runtime.wait(state.id, 10)).exit_code == 0
    lines = await env.runtime.logs(state.id)
    assert [(line.stream, line.text) for line in lines] == [("stdout", "hello world")]


async def test_logs_keep_streams_apart(env: Env) -> None:
    state = await env.run(["sh", "-c", "echo one; echo two >&2; echo three"])
    await env.runtime.wait(state.id, 10)
    lines = await env.runtime.logs(state.id)
    assert [line.text for line in lines if line.stream == "stdout"] == ["one", "three"]
    assert [line.text for line in lines if line.stream == "stderr"] == ["two"]


async def test_logs_tail(env: Env) -> None:
    state = await env.run(["sh", "-c", "echo one; echo two; echo three"])
    await env.runtime.wait(state.id, 10)
    assert [line.text for line in await env.runtime.logs(state.id, tail=2)] == ["two", "three"]
    assert [line.text for line in await env.runtime.logs(state.id, tail=0)] == []


async def test_env_and_cwd_are_honoured(env: Env) -> None:
    state = await env.run(FOREVER, env=["GREETING=hi there"], cwd="/tmp")
    assert (await env.runtime.exec(state.id, ["sh", "-c", 'echo "$GREETING"'])).stdout == "hi there\n"
    assert (await env.runtime.exec(state.id, ["pwd"])).stdout == "/tmp\n"
    path = (await env.runtime.exec(state.id, ["sh", "-c", "echo $PATH"])).stdout
    assert "/bin" in path.strip().split(":")


async def test_user_by_name_gets_ids_groups_and_home_from_the_image(env: Env) -> None:
    state = await env.run(FOREVER, user="app")
    assert (await env.runtime.exec(state.id, ["id", "-u"])).stdout == "1000\n"
    assert (await env.runtime.exec(state.id, ["id", "-g"])).stdout == "1000\n"
    assert (await env.runtime.exec(state.id, ["sh", "-c", "echo $HOME"])).stdout == "/home/app\n"


async def test_numeric_user_and_group(env: Env) -> None:
    state = await env.run(FOREVER, user="1234:5678")
    assert (await env.runtime.exec(state.id, ["id", "-u"])).stdout == "1234\n"
    assert (await env.runtime.exec(state.id, ["id", "-g"])).stdout == "5678\n"


async def process_status(env: Env, **kwargs: Any) -> dict[str, str]:
    """``/proc/self/status`` of a container's process (``Key: value``), read through its log."""
    state = await env.run(["cat", "/proc/self/status"], **kwargs)
    assert (await env.runtime.wait(state.id, 10)).exit_code == 0
    fields = (line.text.split(":", 1) for line in await env.runtime.logs(state.id))
    return {key: value.strip() for key, value in fields}


def mask(*caps: str) -> str:
    return f"{capability_mask(caps):016x}"


async def test_root_holds_the_default_capabilities(env: Env) -> None:
    status = await process_status(env)
    defaults = mask(*DEFAULT_CAPABILITIES)
    assert (status["CapBnd"], status["CapPrm"], status["CapEff"]) == (defaults, defaults, defaults)
    assert (status["CapInh"], status["CapAmb"]) == (mask(), mask())
    assert status["NoNewPrivs"] == "0"


async def test_capabilities_are_dropped_and_added(env: Env) -> None:
    security = ContainerSecurity(capabilities_add=["NET_ADMIN"], capabilities_drop=["NET_RAW"])
    status = await process_status(env, security=security)
    expected = mask(*(DEFAULT_CAPABILITIES - {"NET_RAW"}), "NET_ADMIN")
    assert (status["CapBnd"], status["CapEff"]) == (expected, expected)


async def test_dropping_all_capabilities_keeps_only_the_added_ones(env: Env) -> None:
    security = ContainerSecurity(capabilities_add=["CHOWN"], capabilities_drop=["ALL"])
    status = await process_status(env, security=security)
    assert (status["CapBnd"], status["CapEff"]) == (mask("CHOWN"), mask("CHOWN"))


async def test_a_non_root_user_holds_capabilities_only_in_its_bounding_set(env: Env) -> None:
    status = await process_status(env, user="1234:5678")
    assert status["Uid"].split()[0] == "1234"
    assert status["CapBnd"] == mask(*DEFAULT_CAPABILITIES)
    assert (status["CapPrm"], status["CapEff"]) == (mask(), mask())


async def test_no_new_privileges(env: Env) -> None:
    status = await process_status(env, security=ContainerSecurity(no_new_privileges=True))
    assert status["NoNewPrivs"] == "1"


@pytest.mark.parametrize(
    "security",
    [ContainerSecurity(capabilities_add=["NOT_A_CAP"]), ContainerSecurity(capabilities_drop=["cap_chown"])],
)
async def test_unknown_capabilities_are_rejected_and_leave_nothing(
    env: Env, security: ContainerSecurity
) -> None:
    with pytest.raises(InvalidArgument):
        await env.runtime.create(env.spec(FOREVER, security=security))
    assert await env.runtime.containers() == []


async def test_unknown_user_is_rejected_and_leaves_nothing(env: Env) -> None:
    with pytest.raises(InvalidArgument):
        await env.runtime.create(env.spec(FOREVER, user="ghost"))
    assert await env.runtime.containers() == []


async def test_missing_executable_fails_create_and_leaves_nothing(env: Env) -> None:
    with pytest.raises(RuntimeFailure):
        await env.runtime.create(env.spec(["no-such-binary"]))
    assert await env.runtime.containers() == []


async def test_stop_sends_term_first(env: Env) -> None:
    state = await env.run(TERM_HANDLER)
    began = time.monotonic()
    final = await env.runtime.stop(state.id, grace_s=20)
    assert final.status is ContainerStatus.STOPPED
    assert final.exit_code == 143
    assert time.monotonic() - began < 10


async def test_stop_kills_what_ignores_term_after_the_grace_period(env: Env) -> None:
    state = await env.run(FOREVER)  # PID 1 without a handler ignores SIGTERM
    began = time.monotonic()
    final = await env.runtime.stop(state.id, grace_s=0.5)
    assert time.monotonic() - began >= 0.5
    assert final.status is ContainerStatus.STOPPED
    assert final.exit_code == 128 + signal.SIGKILL


async def test_stop_uses_the_spec_grace_period_by_default(env: Env) -> None:
    state = await env.run(FOREVER, stop_grace_s=0.3)
    began = time.monotonic()
    final = await env.runtime.stop(state.id)
    assert 0.3 <= time.monotonic() - began < 10
    assert final.exit_code == 137


async def test_stop_of_a_created_container(env: Env) -> None:
    created = await env.runtime.create(env.spec(FOREVER))
    final = await env.runtime.stop(created.id, grace_s=5)
    assert final.status is ContainerStatus.STOPPED
    with pytest.raises(Conflict):
        await env.runtime.start(created.id)


async def test_stop_of_an_exited_container_returns_its_state(env: Env) -> None:
    state = await env.run(["sh", "-c", "exit 9"])
    await env.runtime.wait(state.id, 10)
    assert (await env.runtime.stop(state.id)).exit_code == 9


async def test_kill(env: Env) -> None:
    state = await env.run(FOREVER)
    await env.runtime.kill(state.id, signal.SIGKILL)
    final = await env.runtime.wait(state.id, 10)
    assert final.exit_code == 137
    await env.runtime.kill(state.id, signal.SIGKILL)  # killing an exited container is a no-op


async def test_wait_returns_the_current_state_on_timeout(env: Env) -> None:
    state = await env.run(FOREVER)
    began = time.monotonic()
    current = await env.runtime.wait(state.id, 0.3)
    assert current.status is ContainerStatus.RUNNING
    assert current.pid
    assert 0.3 <= time.monotonic() - began < 5


async def test_exec_returns_exit_code_and_both_streams(env: Env) -> None:
    state = await env.run(FOREVER)
    result = await env.runtime.exec(state.id, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (result.exit_code, result.stdout, result.stderr) == (4, "out\n", "err\n")


async def test_exec_of_a_missing_executable_is_127(env: Env) -> None:
    state = await env.run(FOREVER)
    assert (await env.runtime.exec(state.id, ["no-such-command"])).exit_code == 127


async def test_exec_timeout_kills_the_process_not_the_container(env: Env) -> None:
    state = await env.run(FOREVER)
    began = time.monotonic()
    with pytest.raises(ExecTimeout):
        await env.runtime.exec(state.id, ["sleep", "30"], timeout_s=0.5)
    assert time.monotonic() - began < 10
    assert (await env.runtime.state(state.id)).status is ContainerStatus.RUNNING
    assert (await env.runtime.exec(state.id, ["true"])).exit_code == 0


async def test_exec_needs_a_running_container(env: Env) -> None:
    created = await env.runtime.create(env.spec(["true"]))
    with pytest.raises(ContainerNotRunning):
        await env.runtime.exec(created.id, ["true"])
    await env.runtime.start(created.id)
    await env.runtime.wait(created.id, 10)
    with pytest.raises(ContainerNotRunning):
        await env.runtime.exec(created.id, ["true"])


async def _drain(process: ExecProcess, timeout_s: float = 20.0) -> bytes:
    """Everything the process writes to its terminal, until the end of its output."""

    async def collect() -> bytes:
        chunks = []
        while chunk := await process.read():
            chunks.append(chunk)
        return b"".join(chunks)

    return await asyncio.wait_for(collect(), timeout_s)


async def _read_until(process: ExecProcess, wanted: bytes, timeout_s: float = 20.0) -> bytes:
    seen = b""

    async def collect() -> bytes:
        nonlocal seen
        while wanted not in seen:
            chunk = await process.read()
            if not chunk:
                break
            seen += chunk
        return seen

    return await asyncio.wait_for(collect(), timeout_s)


async def test_exec_terminal_streams_merged_output_with_terminal_line_ends(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(
        state.id, ["sh", "-c", "echo one; echo two >&2; exit 3"], size=TerminalSize()
    )
    try:
        assert await _drain(process) == b"one\r\ntwo\r\n"
        assert await process.wait() == 3
    finally:
        await process.kill()
    assert await process.read() == b""


async def test_exec_terminal_output_ends_when_the_program_exits_not_its_children(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(
        state.id, ["sh", "-c", "sleep 100 & echo bg"], size=TerminalSize()
    )
    try:
        # The background sleep still holds the terminal; the output ends with the program anyway.
        assert await _drain(process, timeout_s=10) == b"bg\r\n"
        assert await process.wait() == 0
    finally:
        await process.kill()


async def test_exec_terminal_has_the_requested_size(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(state.id, ["stty", "size"], size=TerminalSize(rows=33, cols=99))
    try:
        assert await _drain(process) == b"33 99\r\n"
        assert await process.wait() == 0
    finally:
        await process.kill()


async def test_exec_terminal_sees_the_container_env_and_term(env: Env) -> None:
    state = await env.run(FOREVER, env=["GREETING=hi"], cwd="/tmp")
    process = await env.runtime.exec_terminal(
        state.id, ["sh", "-c", "echo $GREETING $TERM; pwd"], size=TerminalSize()
    )
    try:
        assert await _drain(process) == b"hi xterm\r\n/tmp\r\n"
    finally:
        await process.kill()


async def test_exec_terminal_keeps_a_term_the_container_sets(env: Env) -> None:
    state = await env.run(FOREVER, env=["TERM=vt100"])
    process = await env.runtime.exec_terminal(state.id, ["sh", "-c", "echo $TERM"], size=TerminalSize())
    try:
        assert await _drain(process) == b"vt100\r\n"
    finally:
        await process.kill()


async def test_exec_terminal_takes_typed_input_with_echo_until_ctrl_d(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(state.id, ["cat"], size=TerminalSize())
    try:
        await process.write(b"typed\r")
        # The terminal echoes the line (\r shown as \r\n), then cat writes it back.
        assert await _read_until(process, b"typed\r\ntyped\r\n") == b"typed\r\ntyped\r\n"
        await process.write(b"\x04")  # Ctrl-D on an empty line: end of input
        assert await _drain(process) == b""
        assert await process.wait() == 0
    finally:
        await process.kill()


async def test_exec_terminal_ctrl_c_interrupts_the_process(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(state.id, ["sleep", "1000"], size=TerminalSize())
    try:
        await asyncio.sleep(0.3)  # let sleep start (runc first joins the container)
        await process.write(b"\x03")
        assert await asyncio.wait_for(process.wait(), 20) == 128 + signal.SIGINT
    finally:
        await process.kill()
    assert (await env.runtime.state(state.id)).status is ContainerStatus.RUNNING


async def test_exec_terminal_kill_ends_the_process_not_the_container(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(state.id, ["sleep", "1000"], size=TerminalSize())
    await asyncio.sleep(0.3)
    began = time.monotonic()
    await process.kill()
    assert time.monotonic() - began < 10
    assert await process.wait() == 128 + signal.SIGKILL
    assert await process.read() == b""
    await process.kill()  # idempotent
    assert (await env.runtime.state(state.id)).status is ContainerStatus.RUNNING


async def test_exec_terminal_of_a_missing_executable_is_127_and_says_so(env: Env) -> None:
    state = await env.run(FOREVER)
    process = await env.runtime.exec_terminal(state.id, ["no-such-command"], size=TerminalSize())
    try:
        assert b"no-such-command" in await _drain(process)
        assert await process.wait() == 127
    finally:
        await process.kill()


async def test_exec_terminal_needs_a_running_container(env: Env) -> None:
    created = await env.runtime.create(env.spec(["true"]))
    with pytest.raises(ContainerNotRunning):
        await env.runtime.exec_terminal(created.id, ["true"], size=TerminalSize())
    await env.runtime.start(created.id)
    await env.runtime.wait(created.id, 10)
    with pytest.raises(ContainerNotRunning):
        await env.runtime.exec_terminal(created.id, ["true"], size=TerminalSize())
    with pytest.raises(ContainerNotFound):
        await env.runtime.exec_terminal("c-nope", ["true"], size=TerminalSize())


async def _follow(runtime: Runtime, container_id: str, timeout_s: float = 20.0) -> list[tuple[str, str]]:
    async def collect() -> list[tuple[str, str]]:
        return [(line.stream, line.text) async for line in runtime.follow_logs(container_id)]

    return await asyncio.wait_for(collect(), timeout_s)


async def test_follow_logs_streams_new_lines_until_the_container_exits(env: Env) -> None:
    state = await env.run(["sh", "-c", "echo early; sleep 2; echo late; echo oops >&2; echo last"])
    deadline = time.monotonic() + 10
    while not await env.runtime.logs(state.id) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert [line.text for line in await env.runtime.logs(state.id)] == ["early"]
    followed = await _follow(env.runtime, state.id)
    # Only what was written after following began, each stream in its order (conmon reads the
    # two pipes separately: there is no order between them).
    assert [text for stream, text in followed if stream == "stdout"] == ["late", "last"]
    assert [text for stream, text in followed if stream == "stderr"] == ["oops"]


async def test_follow_logs_of_an_exited_container_ends_at_once(env: Env) -> None:
    state = await env.run(["echo", "done"])
    await env.runtime.wait(state.id, 10)
    assert await _follow(env.runtime, state.id, timeout_s=10) == []


async def test_follow_logs_of_an_unknown_container(env: Env) -> None:
    with pytest.raises(ContainerNotFound):
        await _follow(env.runtime, "c-nope")


async def test_memory_limit_oom_kill_is_reported(env: Env) -> None:
    state = await env.run(
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
        resources=Resources(memory_bytes=32 * MiB),
    )
    final = await env.runtime.wait(state.id, 30)
    assert final.status is ContainerStatus.STOPPED
    assert final.exit_code == 137
    assert final.oom_killed


async def test_within_the_memory_limit_there_is_no_oom(env: Env) -> None:
    state = await env.run(
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"], resources=Resources(memory_bytes=64 * MiB)
    )
    final = await env.runtime.wait(state.id, 30)
    assert (final.exit_code, final.oom_killed) == (0, False)


async def test_delete_removes_a_running_container_and_is_idempotent(env: Env) -> None:
    state = await env.run(FOREVER)
    await env.runtime.delete(state.id)
    with pytest.raises(ContainerNotFound):
        await env.runtime.state(state.id)
    await env.runtime.delete(state.id)
    assert await env.runtime.containers() == []


async def test_start_reports_the_running_process(env: Env) -> None:
    created = await env.runtime.create(env.spec(FOREVER))
    started = await env.runtime.start(created.id)
    assert started.status is ContainerStatus.RUNNING
    assert started.pid == created.pid
    assert started.started_at is not None
    current = await env.runtime.state(created.id)
    assert (current.status, current.pid, current.started_at) == (
        ContainerStatus.RUNNING,
        started.pid,
        started.started_at,
    )


async def test_start_only_starts_a_created_container(env: Env) -> None:
    state = await env.run(FOREVER)
    with pytest.raises(Conflict):
        await env.runtime.start(state.id)


async def test_unknown_ids(env: Env) -> None:
    rt = env.runtime
    for call in (
        rt.state("nope"),
        rt.start("nope"),
        rt.kill("nope", signal.SIGTERM),
        rt.stop("nope"),
        rt.wait("nope", 1),
        rt.logs("nope"),
        rt.exec("nope", ["true"]),
    ):
        with pytest.raises(ContainerNotFound):
            await call
    await rt.delete("nope")


async def test_duplicate_container_id(env: Env) -> None:
    await env.runtime.create(env.spec(FOREVER, id="twin"))
    with pytest.raises(ContainerAlreadyExists):
        await env.runtime.create(env.spec(FOREVER, id="twin"))


async def test_container_needs_an_existing_sandbox(env: Env) -> None:
    with pytest.raises(SandboxNotFound):
        await env.runtime.create(env.spec(FOREVER, sandbox_id="no-such-sandbox"))


async def test_invalid_container_id(env: Env) -> None:
    with pytest.raises(InvalidArgument):
        await env.runtime.create(env.spec(FOREVER, id="Not_Valid"))


async def test_containers_lists_every_container(env: Env) -> None:
    a = await env.run(FOREVER, id="alpha")
    b = await env.runtime.create(env.spec(["true"], id="beta"))
    listed = {s.id: s for s in await env.runtime.containers()}
    assert set(listed) == {a.id, b.id}
    assert listed["alpha"].status is ContainerStatus.RUNNING
    assert listed["beta"].status is ContainerStatus.CREATED
    assert {s.sandbox_id for s in listed.values()} == {env.sandbox_id}
    await env.runtime.delete("alpha")
    assert [s.id for s in await env.runtime.containers()] == ["beta"]


async def test_deleting_a_sandbox_deletes_its_containers(env: Env) -> None:
    rt = env.runtime
    other = await rt.create_sandbox(SandboxSpec(id=f"sb-{secrets.token_hex(3)}", hostname="group2"))
    assert {s.id for s in await rt.sandboxes()} == {env.sandbox_id, other.id}
    mine = await env.run(FOREVER, sandbox_id=other.id)
    kept = await env.run(FOREVER)
    await rt.delete_sandbox(other.id)
    assert [s.id for s in await rt.sandboxes()] == [env.sandbox_id]
    assert [s.id for s in await rt.containers()] == [kept.id]
    with pytest.raises(ContainerNotFound):
        await rt.state(mine.id)
    await rt.delete_sandbox(other.id)  # idempotent


async def test_duplicate_sandbox_id(env: Env) -> None:
    with pytest.raises(AlreadyExists):
        await env.runtime.create_sandbox(SandboxSpec(id=env.sandbox_id, hostname="again"))
