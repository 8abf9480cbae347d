"""The host mounts moorage makes itself, in one place: container root filesystems (overlayfs over
layer snapshots), the tmpfs behind a secret volume, unmounting, and reading
``/proc/self/mountinfo`` to find what is left mounted. Used by
:class:`~moorage.instances.snapshots.Snapshotter` and by the runc backend.

Overlay mounts use plain ``mount(2)`` while the option string fits in a page; longer layer stacks
(overlayfs' limit is one page of options, ~35 layers with typical absolute paths), or paths that
overlayfs' option syntax cannot carry (``,`` ``:`` ``\\``), go through the new mount API with one
``lowerdir+`` per layer (kernel 6.5+), which has no length limit. We do not ``chdir`` to shorten
paths: the working directory is process-wide and the control plane runs blocking work in threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Sequence
from pathlib import Path

from moorage.core.errors import InvalidArgument, NotSupported
from moorage.instances.runtime.base import RuntimeFailure

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
_MNT_DETACH = 0x2
_UMOUNT_NOFOLLOW = 0x8
# The new mount API has the same syscall numbers on every architecture but alpha.
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100
# Characters that overlayfs' monolithic option string would treat as separators.
_OPTION_SPECIALS = frozenset(",:\\")

_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC  # noqa: PLW0603 - loaded once, lazily, so importing this module costs nothing
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        text = ctypes.c_char_p
        libc.mount.argtypes = [text, text, text, ctypes.c_ulong, text]
        libc.mount.restype = ctypes.c_int
        libc.umount2.argtypes = [text, ctypes.c_int]
        libc.umount2.restype = ctypes.c_int
        libc.syscall.restype = ctypes.c_long
        _LIBC = libc
    return _LIBC


def _mount(source: str, target: Path, fstype: str, flags: int, data: str, *, what: str) -> None:
    if _libc().mount(source.encode(), os.fsencode(target), fstype.encode(), flags, os.fsencode(data)) != 0:
        code = ctypes.get_errno()
        raise RuntimeFailure(f"mounting {what} at {target}: {os.strerror(code)}")


# --- overlay root filesystems -------------------------------------------------------------------


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay at ``target`` from ``lowers`` (top layer first) with the writable
    ``upper`` and overlay's scratch ``work`` (same filesystem as ``upper``). ``upper``, ``work``
    and ``target`` are created when missing.

    Raises InvalidArgument without lowers, NotSupported when a long stack needs ``fsopen(2)`` and
    the kernel has none, RuntimeFailure when the kernel refuses."""
    if not lowers:
        raise InvalidArgument("a root filesystem needs at least one layer")
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    lower_paths = [str(path.absolute()) for path in lowers]
    upper_path, work_path = str(upper.absolute()), str(work.absolute())
    options = f"lowerdir={':'.join(lower_paths)},upperdir={upper_path},workdir={work_path}"
    plain = not any(char in _OPTION_SPECIALS for char in "".join([*lower_paths, upper_path, work_path]))
    if plain and len(os.fsencode(options)) < os.sysconf("SC_PAGE_SIZE"):
        _mount("overlay", target, "overlay", 0, options, what="the overlay rootfs")
    else:
        _mount_fsconfig(target, lower_paths, upper_path, work_path)


def _syscall(number: int, *args: int | bytes) -> int:
    converted = [ctypes.c_char_p(arg) if isinstance(arg, bytes) else ctypes.c_long(arg) for arg in args]
    result = int(_libc().syscall(ctypes.c_long(number), *converted))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _mount_fsconfig(target: Path, lowers: Sequence[str], upper: str, work: str) -> None:
    """fsopen/fsconfig/fsmount/move_mount with one ``lowerdir+`` per layer (no length limit)."""
    try:
        fs_fd = _syscall(_SYS_FSOPEN, b"overlay", _FSOPEN_CLOEXEC)
    except OSError as exc:
        raise NotSupported(f"this kernel has no fsopen(2) for long overlay stacks: {exc.strerror}") from exc
    try:
        try:
            for lower in lowers:
                _fsconfig(fs_fd, "lowerdir+", lower)
            _fsconfig(fs_fd, "upperdir", upper)
            _fsconfig(fs_fd, "workdir", work)
            _syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_CMD_CREATE, 0, 0, 0)
            mount_fd = _syscall(_SYS_FSMOUNT, fs_fd, _FSMOUNT_CLOEXEC, 0)
        except OSError as exc:
            detail = "; ".join(_fs_context_log(fs_fd)) or exc.strerror
            raise RuntimeFailure(f"mounting the overlay rootfs at {target}: {detail}") from exc
        try:
            _syscall(_SYS_MOVE_MOUNT, mount_fd, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH)
        except OSError as exc:
            raise RuntimeFailure(f"attaching the overlay rootfs at {target}: {exc.strerror}") from exc
        finally:
            os.close(mount_fd)
    finally:
        os.close(fs_fd)


def _fsconfig(fs_fd: int, key: str, value: str) -> None:
    _syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0)


def _fs_context_log(fs_fd: int) -> list[str]:
    """The kernel's messages about a failed fsconfig (read from the context descriptor)."""
    messages: list[str] = []
    with contextlib.suppress(OSError):  # ENODATA once the log is empty
        while len(messages) < 16:
            messages.append(os.read(fs_fd, 1024).decode(errors="replace").strip())
    return messages


# --- tmpfs --------------------------------------------------------------------------------------


def mount_tmpfs(target: Path, *, size_bytes: int, mode: int = 0o755) -> None:
    """Mount a fresh, size-limited tmpfs at ``target`` (nosuid, nodev, noexec)."""
    options = f"size={size_bytes},mode={mode:o}"
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options, what="tmpfs")


# --- unmounting ---------------------------------------------------------------------------------


def unmount(target: Path) -> None:
    """Unmount ``target``; a no-op when nothing is mounted there. When the mount is busy (a host
    process still uses it) it is detached lazily: the kernel frees it when its last user goes."""
    path = os.fsencode(target)
    if _libc().umount2(path, _UMOUNT_NOFOLLOW) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):  # not a mount point, or already gone
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


__all__ = [
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "mount_overlay",
    "mount_tmpfs",
    "mounts_under",
    "unmount",
    "unmount_all",
]
