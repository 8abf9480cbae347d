"""Resolving a container's ``user`` ("uid[:gid]", "name[:group]") against its rootfs.

Image content is untrusted: every read here goes through :func:`read_in_root`, which never follows
a symlink (a rootfs may ship ``etc/passwd -> /etc/shadow`` to read the host's files). Both
backends use this module, so the fake and runc resolve users identically.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from moorage.core.errors import InvalidArgument

MAX_ACCOUNT_FILE = 4 << 20  # bytes; larger passwd/group files are ignored


class InvalidUser(InvalidArgument):
    default_code = "InvalidContainerUser"


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def read_in_root(root: Path, relpath: str, *, max_bytes: int = MAX_ACCOUNT_FILE) -> bytes | None:
    """The content of the regular file ``relpath`` under ``root``, or None when it is missing, is
    not a regular file, is larger than ``max_bytes``, or any path component is a symlink."""
    parts = [p for p in relpath.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return None
            os.close(fd)
            fd = nfd
        try:
            ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        except OSError:
            return None
        try:
            st = os.fstat(ffd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
                return None
            chunks: list[bytes] = []
            remaining = max_bytes + 1
            while remaining > 0:
                chunk = os.read(ffd, min(remaining, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
            return None if len(data) > max_bytes else data
        finally:
            os.close(ffd)
    finally:
        os.close(fd)


def read_from_layers(layers: Sequence[Path], relpath: str) -> bytes | None:
    """Read ``relpath`` from the merged view of snapshot ``layers`` (top first) without mounting
    them: the topmost layer holding the file wins; an overlay whiteout (a 0/0 character device)
    hides it in the layers below."""
    for layer in layers:
        data = read_in_root(layer, relpath)
        if data is not None:
            return data
        try:
            st = os.lstat(layer / relpath.lstrip("/"))
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None
    return None


def _entries(data: bytes | None, min_fields: int) -> list[list[str]]:
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= min_fields:
            rows.append(fields)
    return rows


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(user: str | None, read: Callable[[str], bytes | None]) -> ResolvedUser:
    """Resolve ``user`` with the rootfs file reader ``read`` (``/etc/passwd``, ``/etc/group``).

    Numeric ids need no entry (a uid without one gets gid 0 and home ``/``, as Docker does);
    names must exist. Supplementary groups are those of ``/etc/group`` that list the user.
    Raises :class:`InvalidUser` for unknown names or malformed specs.
    """
    spec = user or "0"
    name, sep, group = spec.partition(":")
    if not name or (sep and not group):
        raise InvalidUser(f"invalid user {spec!r}: expected uid[:gid] or name[:group]", target="user")
    passwd = [
        f for f in _entries(read("/etc/passwd"), 7) if _int(f[2]) is not None and _int(f[3]) is not None
    ]
    groups = [f for f in _entries(read("/etc/group"), 4) if _int(f[2]) is not None]

    uid = _int(name)
    entry: list[str] | None
    if uid is not None:
        entry = next((f for f in passwd if int(f[2]) == uid), None)
    else:
        entry = next((f for f in passwd if f[0] == name), None)
        if entry is None:
            raise InvalidUser(f"user {name!r} is not in the image's /etc/passwd", target="user")
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None else 0
    home = entry[5] if entry is not None and entry[5] else "/"

    if group:
        numeric = _int(group)
        if numeric is not None:
            gid = numeric
        else:
            match = next((f for f in groups if f[0] == group), None)
            if match is None:
                raise InvalidUser(f"group {group!r} is not in the image's /etc/group", target="user")
            gid = int(match[2])

    additional: list[int] = []
    if entry is not None:
        for f in groups:
            members = [m for m in f[3].split(",") if m]
            g = int(f[2])
            if entry[0] in members and g != gid and g not in additional:
                additional.append(g)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(additional), home=home)
