"""Exec on a pseudo-terminal with runc: the runc backend's :class:`ExecProcess`.

``runc exec --detach --process P --console-socket S`` runs the process on a terminal that runc
creates inside the container with the size given in ``P``'s ``consoleSize`` (set before the
program starts, so even an immediate ``stty size`` sees it) and passes the terminal's *master*
to us over ``S``. We read the output from the master and write typed input to it; the line
discipline (echo, ``\\r`` → ``\\n``, Ctrl-C, Ctrl-D) is the container terminal's own. runc's
*foreground* mode was measured and rejected: it copies through a second terminal of ours and
races with the program's start (some runs saw no terminal size and doubled ``\\r``).

A detached runc exits as soon as the program runs, so it runs under :mod:`.exec_reaper`, a
subreaper that adopts the program and exits with its exit code. Once the reaper has exited, what
is still buffered in the terminal is read and the output ends, even when a background child of
the program still holds the terminal open.

runc's own failures (the executable is missing, the container stopped meanwhile) are read from its
``--log`` and appended to the output; the exit code is then 127 for a missing program, 126 for
one that cannot be executed (as a shell reports them) and 255 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moorage.instances.runtime.base import RuntimeFailure, TerminalSize
from moorage.instances.runtime.runc import conmon
from moorage.instances.runtime.runc.cli import error_text

REAPER = Path(__file__).with_name("exec_reaper.py")
START_TIMEOUT_S = 30.0  # until runc has handed over the terminal (or failed)
KILL_WAIT_S = 5.0
READ_SIZE = 64 << 10
RUNC_FAILED = 255
_NOT_FOUND = ("executable file not found", "no such file or directory")
_NOT_EXECUTABLE = ("permission denied",)


class RuncTerminal:
    """One exec'd program and the master side of its terminal (see the module docstring).
    Build it with :meth:`start`."""

    def __init__(
        self, reaper: asyncio.subprocess.Process, master: int | None, pid_path: Path, log_path: Path
    ) -> None:
        self._reaper = reaper
        self._exited = asyncio.ensure_future(reaper.wait())
        self._fd = master
        self._pid_path = pid_path
        self._log_path = log_path
        self._waiters: set[asyncio.Future[None]] = set()
        self._code: int | None = None
        self._failure_told = False

    @classmethod
    async def start(
        cls,
        runc_argv: Sequence[str],
        runc_id: str,
        process: dict[str, Any],
        *,
        size: TerminalSize,
        work_dir: Path,
        token: str,
    ) -> RuncTerminal:
        """Run ``process`` (an OCI process object: args, env, cwd, user, …) in container
        ``runc_id`` on a new terminal of ``size``. ``runc_argv`` is ``[runc, --root, R]``; runc's
        pid and log files go to ``work_dir``."""
        spec_path = work_dir / f"{token}.json"
        pid_path, log_path = work_dir / f"{token}.pid", work_dir / f"{token}.log"
        spec = dict(process, terminal=True, consoleSize={"height": size.rows, "width": size.cols})
        spec_path.write_text(json.dumps(spec))
        # A short private directory: socket paths are limited to 107 bytes.
        socket_dir = Path(tempfile.mkdtemp(prefix="moorage-exec-"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket_path = socket_dir / "console.sock"
            listener.bind(str(socket_path))
            listener.listen(1)
            listener.setblocking(False)
            argv = [
                *runc_argv,
                "--log", str(log_path), "--log-format", "json",
                "exec", "--detach", "--process", str(spec_path), "--console-socket", str(socket_path),
                "--pid-file", str(pid_path), runc_id,
            ]  # fmt: skip
            try:
                reaper = await asyncio.create_subprocess_exec(
                    sys.executable, "-I", "-S", str(REAPER), *argv,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise RuntimeFailure(f"cannot run runc exec: {exc}") from exc
            terminal = cls(reaper, None, pid_path, log_path)
            try:
                terminal._fd = await terminal._receive_master(listener)
            except BaseException:
                await terminal.kill()
                raise
            return terminal
        finally:
            listener.close()
            shutil.rmtree(socket_dir, ignore_errors=True)
            spec_path.unlink(missing_ok=True)

    async def _receive_master(self, listener: socket.socket) -> int | None:
        """The terminal's master from runc, or None when runc exited without sending one."""
        loop = asyncio.get_running_loop()
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        try:
            await asyncio.wait(
                {accept, self._exited}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not accept.done():
                accept.cancel()
        if accept.cancelled() or not accept.done():
            if self._exited.done():
                return None
            raise RuntimeFailure(f"runc exec did not start within {START_TIMEOUT_S}s")
        connection, _ = accept.result()
        with connection:
            connection.setblocking(False)
            try:
                fds = await asyncio.wait_for(_receive_fds(connection), START_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise RuntimeFailure(f"runc exec did not hand over its terminal: {exc!r}") from exc
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            return None  # runc failed after connecting
        os.set_blocking(fds[0], False)
        return fds[0]

    async def _ready(self, *, write: bool) -> None:
        """Wait until the master is readable (writable) or the program has exited; returns at
        once after :meth:`kill`."""
        fd = self._fd
        if fd is None:
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not ready.done():
                ready.set_result(None)

        (loop.add_writer if write else loop.add_reader)(fd, wake)
        self._exited.add_done_callback(wake)
        self._waiters.add(ready)
        try:
            await ready
        finally:
            self._waiters.discard(ready)
            self._exited.remove_done_callback(wake)
            if self._fd == fd:
                (loop.remove_writer if write else loop.remove_reader)(fd)

    async def read(self) -> bytes:
        while self._fd is not None:
            exited = self._exited.done()  # before reading: what the program wrote is buffered
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                if exited:
                    break
                await self._ready(write=False)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # the terminal was hung up: nobody holds it any more
                    break
                raise RuntimeFailure(f"reading the exec terminal failed: {exc}") from exc
            if data:
                return data
            break
        await asyncio.wait({self._exited})
        return self._failure_text()

    def _failure_text(self) -> bytes:
        """runc's error, once, after the output (nothing when runc did not fail)."""
        if self._failure_told or self._reaper.returncode != RUNC_FAILED:
            return b""
        self._failure_told = True
        message = self._runc_error()
        return f"{message}\r\n".encode() if message else b""

    def _runc_error(self) -> str:
        try:
            return error_text(self._log_path.read_text())
        except OSError:
            return ""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._fd is not None and not self._exited.done():
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await self._ready(write=True)
                continue
            except OSError:
                return  # the terminal is gone: input has nowhere to go
            view = view[written:]

    async def wait(self) -> int:
        if self._code is None:
            code = await asyncio.shield(self._exited)
            if code < 0:  # the reaper itself was killed (by kill(), with runc still starting)
                code = 128 - code
            elif code == RUNC_FAILED:
                # runc's own failure (its message is in its log), or the program's status 255.
                message = self._runc_error().lower()
                if any(s in message for s in _NOT_FOUND):
                    code = 127
                elif any(s in message for s in _NOT_EXECUTABLE):
                    code = 126
            self._code = code
        return self._code

    async def kill(self) -> None:
        if not self._exited.done():
            # runc writes the pid file before it exits; while the reaper lives, the pid is the
            # program's (alive, or a zombie the reaper has yet to collect).
            pid = conmon.read_pid(self._pid_path)
            with contextlib.suppress(ProcessLookupError):
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                else:  # runc is still starting it: stop runc (the reaper's process group)
                    os.killpg(self._reaper.pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), KILL_WAIT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._reaper.pid, signal.SIGKILL)
                await asyncio.wait({self._exited})
        await self.wait()
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(fd)
            loop.remove_writer(fd)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
            os.close(fd)
        self._failure_told = True
        self._pid_path.unlink(missing_ok=True)
        self._log_path.unlink(missing_ok=True)


async def _receive_fds(connection: socket.socket) -> list[int]:
    """The file descriptors of the first message on ``connection`` (non-blocking); ``[]`` when
    the peer closed without sending any."""
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(connection, 1, 1)
        except BlockingIOError:
            await _readable(connection.fileno())
            continue
        return fds


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
