"""Calling the ``runc`` binary with moorage's private ``--root``.

Only short-lived commands go through pipes here (state, start, kill, delete, list): ``runc create``
is run by conmon, and ``runc exec`` writes to files (see ``RuncRuntime.exec``), because a
container process holding a pipe to the control plane would block it or break on restart.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.instances.runtime.base import RuntimeFailure

COMMAND_TIMEOUT_S = 60.0
_NOT_FOUND = ("does not exist", "not found", "no such file or directory")


class RuncMissing(RuntimeFailure):
    """runc has no container of that id (in our root)."""

    default_code = "RuntimeFailure"


@dataclass(frozen=True)
class RuncState:
    id: str
    status: str  # creating | created | running | paused | stopped
    pid: int
    bundle: str


class RuncCli:
    def __init__(self, runc: str, root: Path) -> None:
        self.runc = runc
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [self.runc, "--root", str(self.root), *args]

    async def run(self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S) -> tuple[int, str, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(*args),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise RuntimeFailure(f"cannot run runc ({self.runc}): {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeFailure(f"runc {args[0]} did not finish within {timeout_s}s") from None
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def check(self, *args: str) -> str:
        rc, out, err = await self.run(*args)
        if rc != 0:
            message = error_text(err) or f"exit status {rc}"
            if any(s in message.lower() for s in _NOT_FOUND):
                raise RuncMissing(f"runc {args[0]}: {message}")
            raise RuntimeFailure(f"runc {args[0]}: {message}")
        return out

    async def state(self, runc_id: str) -> RuncState | None:
        """runc's view of the container, or None when runc has no such container."""
        try:
            out = await self.check("state", runc_id)
        except RuncMissing:
            return None
        data = _json_object(out)
        return RuncState(
            id=str(data.get("id", runc_id)),
            status=str(data.get("status", "")),
            pid=int(data.get("pid") or 0),
            bundle=str(data.get("bundle", "")),
        )

    async def list(self) -> list[RuncState]:
        if not self.root.is_dir():
            return []
        out = await self.check("list", "--format", "json")
        try:
            data = json.loads(out or "null")
        except ValueError as exc:
            raise RuntimeFailure(f"runc list: unexpected output {out[:200]!r}") from exc
        return [
            RuncState(
                str(d.get("id")), str(d.get("status")), int(d.get("pid") or 0), str(d.get("bundle", ""))
            )
            for d in data or []
            if isinstance(d, dict)
        ]

    async def start(self, runc_id: str) -> None:
        await self.check("start", runc_id)

    async def kill(self, runc_id: str, signal: int) -> None:
        await self.check("kill", runc_id, str(int(signal)))

    async def delete(self, runc_id: str) -> None:
        """``runc delete --force``; a no-op when runc has no such container."""
        try:
            await self.check("delete", "--force", runc_id)
        except RuncMissing:
            return


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RuntimeFailure(f"runc: unexpected output {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise RuntimeFailure(f"runc: unexpected output {text[:200]!r}")
    return data


def error_text(stderr: str) -> str:
    """The message of runc's last error line (plain ``time=… level=error msg="…"`` or JSON)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and entry.get("msg"):
            return str(entry["msg"])
        marker = 'msg="'
        if marker in line:
            return line.split(marker, 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return lines[-1].strip() if lines else ""
