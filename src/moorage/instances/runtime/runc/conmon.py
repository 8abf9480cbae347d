"""Launching conmon, the per-container supervisor, and recognising it later.

conmon double-forks and calls ``setsid``, so it outlives the control plane; it runs
``runc create`` with the container's stdio on its own pipes (the control plane never holds a
container fd), writes the k8s-file log, reaps the container as a subreaper and writes the exit
code to ``<exit dir>/<runc id>``. We learn the container's pid from the *sync pipe*: conmon
writes ``{"data": <pid>}`` (or ``{"data": -1, "message": <runc's error>}``) once ``runc create``
is done, and keeps the pipe open afterwards, so exactly one line is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from moorage.instances.runtime.base import RuntimeFailure

SYNC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ConmonFiles:
    """Where one container's conmon keeps its files."""

    bundle: Path
    exit_dir: Path
    socket_dir: Path

    @property
    def log(self) -> Path:
        return self.bundle / "ctr.log"

    @property
    def persist(self) -> Path:
        return self.bundle / "persist"

    @property
    def init_pid(self) -> Path:
        return self.bundle / "init.pid"

    @property
    def conmon_pid(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def conmon_err(self) -> Path:
        return self.bundle / "conmon.err"

    def exit_file(self, runc_id: str) -> Path:
        return self.exit_dir / runc_id


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_conmon_of(pid: int, runc_id: str) -> bool:
    """Whether ``pid`` is a live (not zombie) conmon supervising ``runc_id`` (guards against pid
    reuse: the pid file may be stale)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[:1]
    if state == ["Z"] or not cmdline or not cmdline[0].endswith(b"conmon"):
        return False
    return any(cmdline[i] == b"-c" and cmdline[i + 1] == runc_id.encode() for i in range(len(cmdline) - 1))


def conmon_pid(files: ConmonFiles, runc_id: str) -> int | None:
    """The pid of the live conmon of ``runc_id``, if any."""
    pid = read_pid(files.conmon_pid)
    return pid if pid is not None and is_conmon_of(pid, runc_id) else None


def find_conmons(runc_ids: set[str] | None = None) -> dict[str, int]:
    """Live conmon processes by the runc id they supervise (all, or those in ``runc_ids``), found
    by scanning ``/proc``: for when a pid file is missing."""
    found: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not cmdline or not cmdline[0].endswith(b"conmon"):
            continue
        for i in range(len(cmdline) - 1):
            if cmdline[i] == b"-c":
                rid = cmdline[i + 1].decode(errors="replace")
                if (runc_ids is None or rid in runc_ids) and is_conmon_of(int(entry.name), rid):
                    found[rid] = int(entry.name)
    return found


def kill_conmon(pid: int, runc_id: str) -> None:
    if is_conmon_of(pid, runc_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def launch(
    *,
    conmon: str,
    runc: str,
    runc_root: Path,
    runc_id: str,
    files: ConmonFiles,
    log_size_max: int,
    timeout_s: float = SYNC_TIMEOUT_S,
) -> int:
    """Start conmon for the bundle (which runs ``runc create``) and return the container's pid.

    Raises RuntimeFailure with runc's error when the create fails; conmon has then exited and
    runc has removed what it made. The caller cleans up its own files."""
    files.persist.mkdir(exist_ok=True)  # conmon 2.1.6 dies silently without it
    files.exit_dir.mkdir(parents=True, exist_ok=True)
    files.socket_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        conmon,
        "--api-version", "1",
        "-c", runc_id,
        "-u", runc_id,
        "-n", runc_id,
        "-r", runc,
        "-b", str(files.bundle),
        "-p", str(files.init_pid),
        "-P", str(files.conmon_pid),
        "-l", f"k8s-file:{files.log}",
        "--log-size-max", str(log_size_max),
        "--exit-dir", str(files.exit_dir),
        "--persist-dir", str(files.persist),
        "--socket-dir-path", str(files.socket_dir),
        "--runtime-arg", f"--root={runc_root}",
    ]  # fmt: skip
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "_OCI_SYNCPIPE": str(write_fd),
        }
        with files.conmon_err.open("ab") as errlog:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=errlog,
                    env=env,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                    cwd=files.bundle,  # conmon writes its "oom" marker to its working directory
                )
            except OSError as exc:
                raise RuntimeFailure(f"cannot run conmon ({conmon}): {exc}") from exc
        os.close(write_fd)
        write_fd = -1
        await proc.wait()  # the first conmon process exits once the daemon has forked off
        line = await _read_line(read_fd, timeout_s)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    return _parse_sync(line, files)


async def _read_line(fd: int, timeout_s: float) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    buffer = bytearray()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if not done.done():
                done.set_exception(exc)
            return
        buffer.extend(chunk)
        if (not chunk or b"\n" in buffer) and not done.done():
            done.set_result(bytes(buffer).split(b"\n", 1)[0])

    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(done, timeout_s)
    except TimeoutError:
        raise RuntimeFailure(f"conmon did not report the container within {timeout_s}s") from None
    finally:
        loop.remove_reader(fd)


def _parse_sync(line: bytes, files: ConmonFiles) -> int:
    if not line.strip():
        detail = ""
        with contextlib.suppress(OSError):
            detail = files.conmon_err.read_text(errors="replace").strip()[-2000:]
        raise RuntimeFailure(
            f"conmon exited without reporting the container{': ' + detail if detail else ''}"
        )
    try:
        message = json.loads(line)
        pid = int(message["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeFailure(f"unexpected message from conmon: {line[:200]!r}") from exc
    if pid <= 0:
        raise RuntimeFailure(_runc_error(str(message.get("message", "")) or "runc create failed"))
    return pid


def _runc_error(text: str) -> str:
    """runc's error as conmon relays it, without the log-line decoration."""
    text = text.strip()
    for line in reversed(text.splitlines()):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            entry = json.loads(line)
            if entry.get("level") == "error" and entry.get("msg"):
                return str(entry["msg"])
    return text[-2000:]
