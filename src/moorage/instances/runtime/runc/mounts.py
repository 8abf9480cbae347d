"""The few host mounts the runc backend makes itself: a container's overlay rootfs and the tmpfs
behind a secret volume; plus reading ``/proc/self/mountinfo`` to find what is left mounted.

(``moorage.instances.snapshots.Snapshotter.mount_rootfs`` does the same overlay mount with a
fallback for very long layer stacks; the two are to be unified.)
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from pathlib import Path

from moorage.instances.runtime.base import RuntimeFailure

_MNT_DETACH = 0x2
_UMOUNT_NOFOLLOW = 0x8
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
_OPTION_SPECIALS = frozenset(",:\\")

_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC  # noqa: PLW0603 - loaded once, lazily
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        text = ctypes.c_char_p
        libc.mount.argtypes = [text, text, text, ctypes.c_ulong, text]
        libc.mount.restype = ctypes.c_int
        libc.umount2.argtypes = [text, ctypes.c_int]
        libc.umount2.restype = ctypes.c_int
        _LIBC = libc
    return _LIBC


def _mount(source: str, target: Path, fstype: str, flags: int, data: str) -> None:
    if _libc().mount(source.encode(), os.fsencode(target), fstype.encode(), flags, data.encode()) != 0:
        code = ctypes.get_errno()
        raise RuntimeFailure(f"mounting {fstype} at {target}: {os.strerror(code)}")


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay of ``lowers`` (top first) with ``upper``/``work`` at ``target``.

    Raises RuntimeFailure when the kernel refuses, when a path holds a character the option
    string cannot carry (``,`` ``:`` ``\\``), or when the options exceed a page (~35 layers with
    typical paths)."""
    if not lowers:
        raise RuntimeFailure("a root filesystem needs at least one layer")
    paths = [str(p.absolute()) for p in lowers]
    upper_path, work_path = str(upper.absolute()), str(work.absolute())
    if any(c in _OPTION_SPECIALS for c in "".join([*paths, upper_path, work_path])):
        raise RuntimeFailure("an overlay path contains ',', ':' or '\\'")
    options = f"lowerdir={':'.join(paths)},upperdir={upper_path},workdir={work_path}"
    if len(options.encode()) >= os.sysconf("SC_PAGE_SIZE"):
        raise RuntimeFailure(f"too many layers for one overlay mount ({len(paths)})")
    _mount("overlay", target, "overlay", 0, options)


def mount_tmpfs(target: Path, *, size_bytes: int, mode: int = 0o755) -> None:
    """Mount a fresh, size-limited tmpfs at ``target`` (nosuid, nodev, noexec)."""
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={size_bytes},mode={mode:o}")


def unmount(target: Path) -> None:
    """Unmount ``target``; a no-op when nothing is mounted there. A busy mount is detached
    lazily (the kernel frees it when its last user goes)."""
    path = os.fsencode(target)
    if _libc().umount2(path, _UMOUNT_NOFOLLOW) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return
    if code == errno.EBUSY and _libc().umount2(path, _UMOUNT_NOFOLLOW | _MNT_DETACH) == 0:
        return
    code = ctypes.get_errno() if code == errno.EBUSY else code
    raise RuntimeFailure(f"unmounting {target}: {os.strerror(code)}")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out: list[str] = []
    i = 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` in this mount namespace, deepest first (the order to
    unmount them in)."""
    base = str(root.absolute()).rstrip("/")
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split(" ")
            if len(fields) < 5:
                continue
            point = _unescape(fields[4])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(root: Path) -> None:
    """Unmount everything mounted at or below ``root`` (deepest first)."""
    for point in mounts_under(root):
        unmount(point)
