"""Reading and sweeping the cgroups runc makes for our containers, on cgroup v1, hybrid (v1
controllers plus ``/sys/fs/cgroup/unified``) and pure v2 hosts alike.

runc creates ``<hierarchy>/<cgroups path>`` in every hierarchy and removes the leaf on
``runc delete``; it never removes the parents, and after a crash the leaves can stay too.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """The mount points of every cgroup hierarchy (v1 controllers, named ones, and cgroup2)."""
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split(" ")
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            if sep + 1 < len(fields) and fields[sep + 1] in ("cgroup", "cgroup2"):
                found.append(Path(fields[4]))
    return sorted(set(found))


def unified() -> bool:
    """Whether this host runs pure cgroup v2."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def memory_swap_accounting() -> bool:
    """Whether a ``memory.swap`` limit can be set (v1: ``memory.memsw.*`` exists)."""
    if unified():
        return True
    return (CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()


def oom_kills(cgroup_path: str) -> int | None:
    """How many processes of the cgroup the OOM killer killed, or None when the cgroup (or the
    counter) is gone. Must be read before ``runc delete`` removes the cgroup."""
    rel = cgroup_path.strip("/")
    candidates = [
        CGROUP_ROOT / rel / "memory.events",  # v2
        CGROUP_ROOT / "memory" / rel / "memory.oom_control",  # v1
    ]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def existing(cgroup_path: str) -> list[Path]:
    """The directories of ``cgroup_path`` that exist, across hierarchies."""
    rel = cgroup_path.strip("/")
    return [h / rel for h in hierarchies() if (h / rel).is_dir()]


def children(parent: str) -> set[str]:
    """Names of the cgroups directly below ``parent`` in any hierarchy."""
    names: set[str] = set()
    rel = parent.strip("/")
    for h in hierarchies():
        with contextlib.suppress(OSError):
            names.update(e.name for e in os.scandir(h / rel) if e.is_dir(follow_symlinks=False))
    return names


def remove(cgroup_path: str) -> bool:
    """Remove ``cgroup_path`` (and its empty sub-cgroups) in every hierarchy. Returns False when
    some directory still holds processes (EBUSY) and was kept."""
    complete = True
    for directory in existing(cgroup_path):
        # Sub-cgroups first (runc 1.1 may leave none, but systemd-style managers do).
        subdirs = sorted(
            (Path(root) for root, _, _ in os.walk(directory)), key=lambda p: len(p.parts), reverse=True
        )
        for sub in subdirs:
            try:
                sub.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                complete = False
    return complete


def attach(pid: int, cgroup_path: str) -> None:
    """Move ``pid`` into ``cgroup_path`` in every hierarchy (creating it). Best effort per
    hierarchy: a controller that refuses (e.g. cpuset without cpus/mems) is skipped."""
    rel = cgroup_path.strip("/")
    for h in hierarchies():
        directory = h / rel
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "cgroup.procs").write_text(f"{pid}\n")
