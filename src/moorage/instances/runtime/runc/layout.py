"""Where the runc backend keeps its state, and the small records it writes there.

::

    <state_dir>/                       0700
      containers/<id>/                 the OCI bundle, also conmon's working files
        config.json  meta.json         meta.json is written last: a bundle without it is debris of a
                                       create that never returned (the reconciler removes it)
        rootfs/ upper/ work/           overlay mount point, writable layer, overlay scratch
        ctr.log                        k8s-file log written by conmon
        init.pid conmon.pid conmon.err persist/ ctl winsz   (conmon's)
        started                        when ``start`` ran (ISO 8601)
        final.json                     the exit as recorded once seen (exit code, OOM, time)
        exec/                          output files of running execs
      sandboxes/<id>/
        sandbox.json                   written last, like meta.json
        hostname                       bind-mounted at /etc/hostname
        volumes/<name>/                emptyDir directories and secret tmpfs mounts
      exits/<runc id>                  conmon's exit files
      conmon/<runc id>                 conmon's attach-socket symlinks
    <runc root>/<runc id>/             runc's own state (``--root``; under /run: gone on reboot)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moorage.instances.runtime.runc.conmon import ConmonFiles


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class ContainerRecord:
    """``meta.json``: what the runtime must remember about a container across restarts."""

    id: str
    sandbox_id: str
    runc_id: str
    cgroups_path: str
    stop_grace_s: float
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sandbox_id": self.sandbox_id,
            "runc_id": self.runc_id,
            "cgroups_path": self.cgroups_path,
            "stop_grace_s": self.stop_grace_s,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord | None:
        try:
            return cls(
                id=str(data["id"]),
                sandbox_id=str(data["sandbox_id"]),
                runc_id=str(data["runc_id"]),
                cgroups_path=str(data["cgroups_path"]),
                stop_grace_s=float(data["stop_grace_s"]),
                created_at=parse_time(data.get("created_at")) or now(),
            )
        except (KeyError, TypeError, ValueError):
            return None


class StateLayout:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.containers = state_dir / "containers"
        self.sandboxes = state_dir / "sandboxes"
        self.exits = state_dir / "exits"
        self.sockets = state_dir / "conmon"

    def ensure(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        for directory in (self.containers, self.sandboxes, self.exits, self.sockets):
            directory.mkdir(exist_ok=True)

    def bundle(self, container_id: str) -> Path:
        return self.containers / container_id

    def files(self, container_id: str) -> ConmonFiles:
        return ConmonFiles(bundle=self.bundle(container_id), exit_dir=self.exits, socket_dir=self.sockets)

    def sandbox(self, sandbox_id: str) -> Path:
        return self.sandboxes / sandbox_id

    def container_ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.containers) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def sandbox_ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.sandboxes) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def record(self, container_id: str) -> ContainerRecord | None:
        data = read_json(self.bundle(container_id) / "meta.json")
        return ContainerRecord.from_json(data) if data is not None else None
