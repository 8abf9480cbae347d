"""``FakeRuntime``: an in-memory backend that passes the runtime contract suite in milliseconds.

Containers run *simulated* processes instead of binaries. The simulation covers exactly what the
contract suite (and the service tests built on it) needs, with busybox semantics, so the same
test runs unchanged against runc:

=====================================  =====================================================
``echo ARGS...``                       writes ``ARGS`` joined by spaces to stdout
``true`` / ``false``                   exit 0 / 1
``sleep SECONDS|infinity``             sleeps (a process is a plain timer, no real work)
``env`` / ``pwd`` / ``id [-u|-g]``     env, working directory, uid/gid
``cat``                                copies stdin to stdout (stdin is empty but under
                                       ``exec_terminal``); ``stty size``: the terminal's size
``cat /proc/self/status``              ``Uid``, ``Gid``, the ``Cap*`` masks (the spec's
                                       capabilities; a non-root process keeps only
                                       ``CapBnd``) and ``NoNewPrivs``; other files are missing
``dd ... bs=SIZE ...``                 allocates SIZE (K/M/G suffixes); above the memory
                                       limit it is OOM-killed (137, ``oom_killed``)
``sh -c SCRIPT``                       statements separated by ``;``: any command above,
                                       ``CMD >&2`` (to stderr), ``exit [N]``,
                                       ``trap 'ACTION' SIG...`` (``''`` ignores the signal),
                                       ``sleep N & wait`` (a wait that traps interrupt),
                                       ``sleep N & CMD`` (the sleep left behind);
                                       ``$NAME``/``${NAME}``/``$?`` expand everywhere (quotes
                                       are not told apart)
=====================================  =====================================================

Any other program is "not found": as a container's command ``create`` fails (runc checks the
executable at create time), under ``exec`` or in a script it exits 127.

Signals follow Linux's rules for PID 1: a container's init ignores every signal it has no trap
for, except SIGKILL (exit 137). So ``stop`` of ``sleep 1000`` takes the whole grace period, as
with runc. Exec'd processes are not PID 1: signals without a trap terminate them.

``exec_terminal`` gives the process a simulated terminal: output lines end in ``\\r\\n`` and
input goes through a line discipline (echo, ``\\r`` → ``\\n``, backspace, Ctrl-D, Ctrl-C), so
terminal sessions read the same as on runc's pseudo-terminals.

Nothing is persisted; ``containers()`` lists what this instance created.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import signal as signals
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

from moorage.core.errors import AlreadyExists, Conflict
from moorage.instances.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ExecResult,
    ExecTimeout,
    LogLine,
    RuntimeFailure,
    Sandbox,
    SandboxNotFound,
    SandboxSpec,
    TerminalSize,
)
from moorage.instances.runtime.specs import (
    capability_mask,
    capability_set,
    check_container_spec,
    check_sandbox_spec,
    process_env,
)
from moorage.instances.runtime.users import ResolvedUser, read_from_layers, resolve_user

_SIZE = re.compile(r"(\d+)([kKmMgG]?)\Z")
_VAR = re.compile(r"\$(\?|\{\w+\}|\w+)")


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


Write = Callable[[str], None]


@dataclass
class _Process:
    """The simulated process's view of the world."""

    env: dict[str, str]
    cwd: str
    user: ResolvedUser
    memory_limit: int | None
    init: bool
    capabilities: tuple[str, ...] = ()  # the bounding set
    no_new_privileges: bool = False
    traps: dict[int, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    oom_killed: bool = False
    status: int = 0
    stdin: asyncio.Queue[str | None] | None = None  # lines (with their "\n"); None: end of input
    terminal: TerminalSize | None = None

    async def sleep(self, seconds: float, *, interruptible: bool) -> None:
        if not interruptible:
            await asyncio.sleep(seconds)
            return
        self.interrupt.clear()
        if self.pending:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.interrupt.wait(), None if seconds == float("inf") else seconds)


def _signum(name: str) -> int:
    if name.isdigit():
        return int(name)
    upper = name.upper()
    return int(getattr(signals, upper if upper.startswith("SIG") else "SIG" + upper))


def _parse_size(text: str) -> int | None:
    m = _SIZE.match(text)
    if m is None:
        return None
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def _sleep_seconds(args: Sequence[str]) -> float | None:
    if len(args) != 1:
        return None
    if args[0] == "infinity":
        return float("inf")
    try:
        return float(args[0])
    except ValueError:
        return None


async def _program(argv: Sequence[str], p: _Process, out: Write, err: Write) -> int:
    prog, args = PurePosixPath(argv[0]).name, list(argv[1:])
    if prog == "sh":
        if len(args) >= 2 and args[0] == "-c":
            return await _script(args[1], p, out, err)
        err("sh: only 'sh -c SCRIPT' is simulated")
        return 2
    if prog == "echo":
        out(" ".join(args))
        return 0
    if prog in ("true", "false"):
        return 0 if prog == "true" else 1
    if prog == "sleep":
        seconds = _sleep_seconds(args)
        if seconds is None:
            err("sleep: invalid number")
            return 1
        await p.sleep(seconds, interruptible=False)
        return 0
    if prog == "env":
        for k, v in p.env.items():
            out(f"{k}={v}")
        return 0
    if prog == "pwd":
        out(p.cwd)
        return 0
    if prog == "cat":
        if args not in ([], ["-"]):
            return _cat(args, p, out, err)
        while p.stdin is not None and (line := await p.stdin.get()) is not None:
            out(line.removesuffix("\n"))
        return 0
    if prog == "stty":
        if args != ["size"] or p.terminal is None:
            err("stty: standard input: Not a tty" if p.terminal is None else "stty: only 'size' is simulated")
            return 1
        out(f"{p.terminal.rows} {p.terminal.cols}")
        return 0
    if prog == "id":
        if args == ["-u"]:
            out(str(p.user.uid))
        elif args == ["-g"]:
            out(str(p.user.gid))
        else:
            out(f"uid={p.user.uid} gid={p.user.gid}")
        return 0
    if prog == "dd":
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        size = _parse_size(opts.get("bs", "512")) or 512
        if p.memory_limit is not None and size > p.memory_limit:
            p.oom_killed = True
            return 128 + signals.SIGKILL
        count = opts.get("count", "1")
        err(f"{count}+0 records in")
        err(f"{count}+0 records out")
        return 0
    err(f"sh: {prog}: not found")
    return 127


def _cat(args: Sequence[str], p: _Process, out: Write, err: Write) -> int:
    for path in args:
        if path not in ("/proc/self/status", "/proc/thread-self/status"):
            err(f"cat: can't open '{path}': No such file or directory")
            return 1
        bounding = capability_mask(p.capabilities)
        # execve as a non-root user clears the permitted and effective sets (no ambient ones).
        held = bounding if p.user.uid == 0 else 0
        out("Name:\tcat")
        out("Uid:\t" + "\t".join([str(p.user.uid)] * 4))
        out("Gid:\t" + "\t".join([str(p.user.gid)] * 4))
        for key, mask in (("CapInh", 0), ("CapPrm", held), ("CapEff", held), ("CapBnd", bounding)):
            out(f"{key}:\t{mask:016x}")
        out(f"CapAmb:\t{0:016x}")
        out(f"NoNewPrivs:\t{int(p.no_new_privileges)}")
    return 0


def is_simulated(program: str) -> bool:
    """Whether the fake can run ``program`` (a name or path)."""
    return PurePosixPath(program).name in SIMULATED


SIMULATED = frozenset({"sh", "echo", "true", "false", "sleep", "env", "pwd", "id", "dd", "cat", "stty"})


def _expand(word: str, p: _Process) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        return str(p.status) if name == "?" else p.env.get(name, "")

    return _VAR.sub(value, word)


def _statements(script: str) -> list[list[str]]:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&>")
    lexer.whitespace_split = True
    statements: list[list[str]] = [[]]
    for token in lexer:
        if token == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


async def _run_traps(p: _Process, out: Write, err: Write) -> None:
    while p.pending:
        await _script(p.pending.pop(0), p, out, err)


async def _script(script: str, p: _Process, out: Write, err: Write) -> int:
    try:
        statements = _statements(script)
    except ValueError as exc:
        err(f"sh: syntax error: {exc}")
        return 2
    for raw in statements:
        words = [_expand(w, p) for w in raw]
        if words[0] == "exit":
            raise _Exit(int(words[1]) if len(words) > 1 and words[1].isdigit() else p.status)
        if words[0] == "trap":
            for name in words[2:]:
                p.traps[_signum(name)] = words[1]
            p.status = 0
        elif "&" in words:
            background, rest = words[: words.index("&")], words[words.index("&") + 1 :]
            seconds = _sleep_seconds(background[1:]) if background[:1] == ["sleep"] else None
            if seconds is None:
                err("sh: only 'sleep N' is simulated in the background")
                p.status = 2
            elif rest == ["wait"]:
                await p.sleep(seconds, interruptible=True)
                p.status = 0
            else:  # a background sleep nobody waits for has no effect to simulate
                p.status = await _program(rest, p, out, err) if rest else 0
        else:
            to_err = words[-2:] == [">&", "2"]
            command = words[:-2] if to_err else words
            p.status = await _program(command, p, err if to_err else out, err)
        await _run_traps(p, out, err)
    return p.status


class _Terminal:
    """A simulated pseudo-terminal around one exec'd program (the fake's ``ExecProcess``)."""

    def __init__(self, argv: Sequence[str], p: _Process) -> None:
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._line = bytearray()  # what has been typed since the last line end
        self._stdin: asyncio.Queue[str | None] = asyncio.Queue()
        self._ended = False  # the output's end has been read
        p.stdin = self._stdin
        self.code: int | None = None
        self._task = asyncio.create_task(self._main(argv, p))

    def _emit(self, data: bytes) -> None:
        self._output.put_nowait(data.replace(b"\n", b"\r\n"))

    def line(self, text: str) -> None:
        self._emit(text.encode() + b"\n")

    async def _main(self, argv: Sequence[str], p: _Process) -> None:
        try:
            code = await _program(argv, p, self.line, self.line)
        except _Exit as exc:
            code = exc.code
        except asyncio.CancelledError:
            code = 128 + signals.SIGKILL if self.code is None else self.code
        self.code = code
        self._output.put_nowait(b"")

    async def read(self) -> bytes:
        if self._ended:
            return b""
        data = await self._output.get()
        self._ended = not data
        return data

    async def write(self, data: bytes) -> None:
        if self._task.done():
            return
        for byte in data:
            if byte == 0x03:  # Ctrl-C: SIGINT, which terminates a program without a trap
                self._emit(b"^C\n")
                self.code = 128 + signals.SIGINT
                self._task.cancel()
                return
            if byte == 0x04:  # Ctrl-D: hand over the line; on an empty line, end of input
                if not self._line:
                    self._stdin.put_nowait(None)
                self._flush_line("")
            elif byte in (0x0D, 0x0A):
                self._emit(b"\n")
                self._flush_line("\n")
            elif byte in (0x7F, 0x08):
                if self._line:
                    self._line.pop()
                    self._emit(b"\b \b")
            else:
                self._line.append(byte)
                self._emit(bytes([byte]))

    def _flush_line(self, end: str) -> None:
        if self._line or end:
            self._stdin.put_nowait(self._line.decode(errors="replace") + end)
        self._line.clear()

    async def wait(self) -> int:
        await asyncio.wait({self._task})
        assert self.code is not None  # noqa: S101 - set when the task ends
        return self.code

    async def kill(self) -> None:
        if not self._task.done():
            self._task.cancel()
        await self.wait()
        self._ended = True


@dataclass
class _Container:
    spec: ContainerSpec
    pid: int
    user: ResolvedUser
    env: list[str]
    status: ContainerStatus = ContainerStatus.CREATED
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    process: _Process | None = None
    task: asyncio.Task[None] | None = None
    forced_exit: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    def state(self) -> ContainerState:
        return ContainerState(
            id=self.spec.id,
            sandbox_id=self.spec.sandbox_id,
            status=self.status,
            pid=self.pid if self.status in (ContainerStatus.CREATED, ContainerStatus.RUNNING) else None,
            exit_code=self.exit_code,
            oom_killed=self.oom_killed,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    def log(self, stream: str) -> Write:
        def write(text: str) -> None:
            for line in text.split("\n"):
                self.logs.append(LogLine(datetime.now(UTC), stream, line))

        return write

    def finish(self, code: int) -> None:
        self.status = ContainerStatus.STOPPED
        self.exit_code = code
        self.finished_at = datetime.now(UTC)
        if self.process is not None and self.process.oom_killed:
            self.oom_killed = True
        self.exited.set()


@dataclass
class _Sandbox:
    spec: SandboxSpec


class FakeRuntime:
    """The :class:`~moorage.instances.runtime.base.Runtime` contract, in memory (see the module
    docstring for the simulated commands)."""

    def __init__(self) -> None:
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._next_pid = 1000

    # sandboxes

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        check_sandbox_spec(spec)
        if spec.id in self._sandboxes:
            raise AlreadyExists(f"sandbox {spec.id!r} already exists", code="SandboxAlreadyExists")
        self._sandboxes[spec.id] = _Sandbox(spec)
        return self._sandbox(spec)

    @staticmethod
    def _sandbox(spec: SandboxSpec) -> Sandbox:
        return Sandbox(id=spec.id, ip=None, ports=tuple(spec.ports), netns=None)

    async def delete_sandbox(self, sandbox_id: str) -> None:
        for c in [c for c in self._containers.values() if c.spec.sandbox_id == sandbox_id]:
            await self.delete(c.spec.id)
        self._sandboxes.pop(sandbox_id, None)

    async def sandboxes(self) -> list[Sandbox]:
        return [self._sandbox(s.spec) for s in self._sandboxes.values()]

    # containers

    def _get(self, container_id: str) -> _Container:
        try:
            return self._containers[container_id]
        except KeyError:
            raise ContainerNotFound(f"container {container_id!r} not found", target=container_id) from None

    async def create(self, spec: ContainerSpec) -> ContainerState:
        sandbox = self._sandboxes.get(spec.sandbox_id)
        if sandbox is None:
            raise SandboxNotFound(f"sandbox {spec.sandbox_id!r} not found", target=spec.sandbox_id)
        check_container_spec(spec, {v.name: v for v in sandbox.spec.volumes})
        if spec.id in self._containers:
            raise ContainerAlreadyExists(f"container {spec.id!r} already exists", target=spec.id)
        user = resolve_user(spec.user, lambda path: read_from_layers(spec.rootfs_layers, path))
        if not is_simulated(spec.args[0]):
            raise RuntimeFailure(
                f'exec: "{spec.args[0]}": executable file not found in $PATH', code="ExecutableNotFound"
            )
        self._next_pid += 1
        env = process_env(spec.env, home=user.home, hostname=sandbox.spec.hostname)
        container = _Container(spec=spec, pid=self._next_pid, user=user, env=env)
        self._containers[spec.id] = container
        return container.state()

    def _process(self, c: _Container, *, init: bool) -> _Process:
        env = dict(e.split("=", 1) for e in c.env)
        return _Process(
            env,
            c.spec.cwd,
            c.user,
            c.spec.resources.memory_bytes,
            init=init,
            capabilities=tuple(capability_set(c.spec.security)),
            no_new_privileges=c.spec.security.no_new_privileges,
        )

    async def start(self, container_id: str) -> ContainerState:
        c = self._get(container_id)
        if c.status is not ContainerStatus.CREATED:
            raise Conflict(
                f"container {container_id!r} is {c.status}, not created", code="ContainerNotCreated"
            )
        c.status = ContainerStatus.RUNNING
        c.started_at = datetime.now(UTC)
        c.process = self._process(c, init=True)
        c.task = asyncio.create_task(self._run(c, c.process))
        await asyncio.sleep(0)  # let it begin, as a real process would
        return c.state()

    async def _run(self, c: _Container, p: _Process) -> None:
        try:
            code = await _program(c.spec.args, p, c.log("stdout"), c.log("stderr"))
        except _Exit as exc:
            code = exc.code
        except asyncio.CancelledError:
            code = c.forced_exit if c.forced_exit is not None else 128 + signals.SIGKILL
        c.finish(code)

    async def kill(self, container_id: str, signal: int) -> None:
        c = self._get(container_id)
        if c.status is ContainerStatus.STOPPED:
            return
        if c.status is ContainerStatus.CREATED:
            if signal == signals.SIGKILL:
                c.finish(128 + signal)
            return
        p = c.process
        assert p is not None  # noqa: S101 - RUNNING implies a process
        assert c.task is not None  # noqa: S101 - and its task
        action = p.traps.get(signal)
        if signal == signals.SIGKILL or (action is None and not p.init):
            c.forced_exit = 128 + signal
            c.task.cancel()
            await asyncio.wait({c.task})
        elif action:  # '' ignores; no trap on PID 1 ignores too
            p.pending.append(action)
            p.interrupt.set()

    async def stop(self, container_id: str, grace_s: float | None = None) -> ContainerState:
        c = self._get(container_id)
        grace = c.spec.stop_grace_s if grace_s is None else grace_s
        if c.status is ContainerStatus.RUNNING and grace > 0:
            await self.kill(container_id, signals.SIGTERM)
            await self.wait(container_id, grace)
        if c.status is not ContainerStatus.STOPPED:
            await self.kill(container_id, signals.SIGKILL)
        return c.state()

    async def delete(self, container_id: str) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        if c.status is not ContainerStatus.STOPPED:
            await self.kill(container_id, signals.SIGKILL)
        del self._containers[container_id]

    async def state(self, container_id: str) -> ContainerState:
        return self._get(container_id).state()

    async def wait(self, container_id: str, timeout_s: float | None = None) -> ContainerState:
        c = self._get(container_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(c.exited.wait(), timeout_s)
        return c.state()

    async def containers(self) -> list[ContainerState]:
        return [c.state() for c in self._containers.values()]

    async def logs(self, container_id: str, *, tail: int | None = None) -> list[LogLine]:
        lines = list(self._get(container_id).logs)
        return lines if tail is None else lines[max(len(lines) - tail, 0) :]

    async def exec(self, container_id: str, args: Sequence[str], *, timeout_s: float = 30.0) -> ExecResult:
        c = self._get(container_id)
        if c.status is not ContainerStatus.RUNNING:
            raise ContainerNotRunning(f"container {container_id!r} is not running", target=container_id)
        if not args:
            raise RuntimeFailure("exec needs a command")
        out: list[str] = []
        err: list[str] = []
        p = self._process(c, init=False)
        try:
            code = await asyncio.wait_for(_program(args, p, out.append, err.append), timeout_s)
        except _Exit as exc:
            code = exc.code
        except TimeoutError:
            raise ExecTimeout(f"exec in {container_id!r} outlived {timeout_s}s and was killed") from None
        if p.oom_killed:
            c.oom_killed = True
        return ExecResult(code, "".join(f"{line}\n" for line in out), "".join(f"{line}\n" for line in err))

    async def exec_terminal(self, container_id: str, args: Sequence[str], *, size: TerminalSize) -> _Terminal:
        c = self._get(container_id)
        if c.status is not ContainerStatus.RUNNING:
            raise ContainerNotRunning(f"container {container_id!r} is not running", target=container_id)
        if not args:
            raise RuntimeFailure("exec needs a command")
        p = self._process(c, init=False)
        p.env.setdefault("TERM", "xterm")
        p.terminal = size
        return _Terminal(args, p)

    async def follow_logs(self, container_id: str) -> AsyncIterator[LogLine]:
        c = self._get(container_id)
        seen = len(c.logs)
        while True:
            done = c.exited.is_set()
            for line in c.logs[seen:]:
                yield line
            seen = len(c.logs)
            if done:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.exited.wait(), 0.05)


__all__ = ["SIMULATED", "FakeRuntime", "is_simulated"]
