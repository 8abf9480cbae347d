"""Immutable layer snapshots keyed by chain id, and overlayfs root filesystems on top of them.

Layout under ``root``::

    snapshots/                       0700: snapshots hold setuid binaries of images
      <chain-id hex>/fs/             one unpacked layer: an overlay lower directory
      <chain-id hex>/.done           JSON {chain_id, diff_id, parent}; written before the rename
      .tmp-<pid>-<rand>/             a snapshot being unpacked
      .trash-<pid>-<rand>/           a snapshot being removed

A snapshot is complete exactly when ``<hex>/.done`` exists: it is unpacked into a ``.tmp-`` directory,
its diff_id is verified, the marker is written, and the directory is renamed into place in one
``rename(2)``. Renaming onto an existing snapshot fails, so when two processes unpack the same chain,
one wins and the other discards its copy. Within a process a per-chain lock makes the others wait
instead of unpacking again. A snapshot's content depends on its whole chain (hardlinks into lower
layers are copies, implied directories copy lower metadata), which is why it is keyed by chain id and
not by diff_id.

Root filesystems are overlay mounts: ``lowerdir`` = the chain's snapshots (top first), plus a
per-container ``upperdir``/``workdir``. The mount uses plain ``mount(2)`` while the option string fits
in a page; longer chains (or paths overlayfs' option syntax cannot carry) go through the new mount
API with one ``lowerdir+`` per layer (kernel 6.5+), which has no length limit. We do not ``chdir``
to shorten paths: the working directory is process-wide and the control plane runs blocking work in
threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from moorage.core.errors import InvalidArgument, NotSupported
from moorage.instances.layers import apply_layer
from moorage.instances.runtime.base import RuntimeFailure

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DONE = ".done"
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_UMOUNT_NOFOLLOW = 0x8
_MNT_DETACH = 0x2
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

LayerOpener = Callable[[], BinaryIO]


class LayerDigestMismatch(InvalidArgument):
    """A layer's uncompressed content does not hash to the diff_id the image config promises."""

    default_code = "LayerDigestMismatch"


class Snapshotter:
    """Unpacks layers once per chain id and mounts container root filesystems over them.

    Snapshots are immutable once published; :meth:`remove` is for the garbage collector, which must
    make sure that no image being prepared and no mounted rootfs still uses the chain.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._snapshots = root / "snapshots"
        self._locks: dict[str, asyncio.Lock] = {}

    # --- identity ----------------------------------------------------------------------------

    @staticmethod
    def chain_id(diff_ids: Sequence[str]) -> str:
        """The OCI chain id of a layer stack given bottom first: ``ChainID(L0) = DiffID(L0)``,
        ``ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))``. Raises InvalidArgument for an
        empty stack or a diff_id that is not ``sha256:<64 hex>``."""
        if not diff_ids:
            raise InvalidArgument("a layer stack needs at least one layer")
        chain = ""
        for diff_id in diff_ids:
            _check_digest(diff_id, "diff_id")
            chain = diff_id if not chain else _sha256(f"{chain} {diff_id}")
        return chain

    def lowerdir(self, chain_id: str) -> Path:
        """The ``fs`` directory of a chain's snapshot (it exists once the chain is prepared)."""
        return self._dir(chain_id) / "fs"

    def chains(self) -> list[str]:
        """The chain ids of all complete snapshots, for the garbage collector."""
        try:
            entries = list(os.scandir(self._snapshots))
        except FileNotFoundError:
            return []
        return sorted(
            f"sha256:{entry.name}"
            for entry in entries
            if _DIGEST.fullmatch(f"sha256:{entry.name}") and os.path.exists(os.path.join(entry.path, _DONE))
        )

    # --- unpacking ----------------------------------------------------------------------------

    async def prepare(self, layers: Sequence[tuple[LayerOpener, str]]) -> list[Path]:
        """Make sure every prefix of the layer stack has a snapshot and return their ``fs``
        directories **top first** (overlay's ``lowerdir`` order).

        ``layers`` are given bottom first, each as an opener of its *uncompressed* tar stream and
        the diff_id from the image config. Openers are called (in a worker thread) only for layers
        that are missing, once each even under concurrent calls. Raises
        :class:`LayerDigestMismatch`, the errors of :func:`~moorage.instances.layers.apply_layer`
        (``HostileLayer``, ``MalformedLayer``, ...), or whatever an opener raises; no partial
        snapshot is left behind.
        """
        paths: list[Path] = []
        chain = ""
        for opener, diff_id in layers:
            _check_digest(diff_id, "diff_id")
            parent = chain or None
            chain = diff_id if not chain else _sha256(f"{chain} {diff_id}")
            await self._ensure(chain, parent, opener, diff_id, list(reversed(paths)))
            paths.append(self.lowerdir(chain))
        return list(reversed(paths))

    async def _ensure(
        self, chain: str, parent: str | None, opener: LayerOpener, diff_id: str, lowers: list[Path]
    ) -> None:
        if self._is_done(chain):
            return
        lock = self._locks.setdefault(chain, asyncio.Lock())
        async with lock:
            if self._is_done(chain):
                return
            await asyncio.to_thread(self._unpack, chain, parent, opener, diff_id, lowers)

    def _unpack(
        self, chain: str, parent: str | None, opener: LayerOpener, diff_id: str, lowers: list[Path]
    ) -> None:
        self._snapshots.mkdir(parents=True, exist_ok=True)
        os.chmod(self._snapshots, 0o700)
        tmp = self._snapshots / f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        tmp.mkdir(mode=0o700)
        try:
            fs = tmp / "fs"
            fs.mkdir()
            os.chmod(fs, 0o755)  # noqa: S103 - a rootfs' "/" is world-readable; snapshots/ is 0700
            with opener() as stream:
                actual = apply_layer(stream, fs, lower_layers=lowers)
            if actual != diff_id:
                raise LayerDigestMismatch(
                    f"layer content hashes to {actual}, but the image config says {diff_id}",
                    target=diff_id,
                )
            marker = {"chain_id": chain, "diff_id": diff_id, "parent": parent}
            (tmp / _DONE).write_text(json.dumps(marker), encoding="utf-8")
            self._publish(tmp, chain)
        except BaseException:
            _remove_tree(tmp)
            raise

    def _publish(self, tmp: Path, chain: str) -> None:
        final = self._dir(chain)
        try:
            os.rename(tmp, final)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if self._is_done(chain):  # another process published the same chain first
            _remove_tree(tmp)
            return
        # A directory without its marker is never published by this code; move it out of the way.
        self._trash(final)
        os.rename(tmp, final)

    # --- removal ------------------------------------------------------------------------------

    def remove(self, chain_id: str) -> None:
        """Delete a chain's snapshot (no-op when absent). The rename first makes the removal atomic
        for readers: the chain is either complete or gone."""
        directory = self._dir(chain_id)
        if directory.exists():
            self._trash(directory)

    def discard_incomplete(self) -> int:
        """Remove the ``.tmp-``/``.trash-`` leftovers of processes that died mid-way (run at
        start-up). Returns how many were removed."""
        try:
            entries = list(os.scandir(self._snapshots))
        except FileNotFoundError:
            return 0
        removed = 0
        for entry in entries:
            for prefix in (_TMP_PREFIX, _TRASH_PREFIX):
                if entry.name.startswith(prefix) and not _pid_alive(entry.name[len(prefix) :]):
                    _remove_tree(Path(entry.path))
                    removed += 1
        return removed

    def _trash(self, directory: Path) -> None:
        trash = self._snapshots / f"{_TRASH_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        os.rename(directory, trash)
        _remove_tree(trash)

    # --- root filesystems ---------------------------------------------------------------------

    def mount_rootfs(self, lowers: Sequence[Path], upper: Path, work: Path, target: Path) -> None:
        """Mount an overlay at ``target`` from ``lowers`` (top first, as :meth:`prepare` returns
        them) with the container's writable ``upper`` and overlay's scratch ``work`` (same
        filesystem as ``upper``). ``upper``, ``work`` and ``target`` are created when missing.
        Raises InvalidArgument without lowers, RuntimeFailure when the kernel refuses."""
        if not lowers:
            raise InvalidArgument("a root filesystem needs at least one layer")
        for directory in (upper, work, target):
            directory.mkdir(parents=True, exist_ok=True)
        lower_paths = [str(path.absolute()) for path in lowers]
        upper_path, work_path = str(upper.absolute()), str(work.absolute())
        options = f"lowerdir={':'.join(lower_paths)},upperdir={upper_path},workdir={work_path}"
        plain = not any(char in _OPTION_SPECIALS for char in "".join([*lower_paths, upper_path, work_path]))
        if plain and len(options.encode()) < os.sysconf("SC_PAGE_SIZE"):
            _mount_legacy(target, options)
        else:
            _mount_fsconfig(target, lower_paths, upper_path, work_path)

    def unmount(self, target: Path) -> None:
        """Unmount a root filesystem; a no-op when nothing is mounted there. When the mount is busy
        (a host process still uses it) it is detached lazily, so the container can be cleaned up."""
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

    # --- helpers ------------------------------------------------------------------------------

    def _dir(self, chain_id: str) -> Path:
        _check_digest(chain_id, "chain id")
        return self._snapshots / chain_id.removeprefix("sha256:")

    def _is_done(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / _DONE).is_file()


def _check_digest(value: str, what: str) -> None:
    if not _DIGEST.fullmatch(value):
        raise InvalidArgument(f"{what} {value!r} is not a sha256 digest (sha256:<64 hex digits>)")


def _sha256(text: str) -> str:
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _remove_tree(path: Path) -> None:
    # shutil.rmtree never follows symlinks, so an image's symlinks cannot redirect the removal.
    shutil.rmtree(path, ignore_errors=True)


def _pid_alive(name: str) -> bool:
    pid_text = name.split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC  # noqa: PLW0603 - loaded once, lazily, so importing this module costs nothing
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        text = ctypes.c_char_p
        libc.mount.argtypes = [text, text, text, ctypes.c_ulong, text]
        libc.mount.restype = ctypes.c_int
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.umount2.restype = ctypes.c_int
        libc.syscall.restype = ctypes.c_long
        _LIBC = libc
    return _LIBC


def _mount_legacy(target: Path, options: str) -> None:
    if _libc().mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode()) != 0:
        code = ctypes.get_errno()
        raise RuntimeFailure(f"mounting the overlay rootfs at {target}: {os.strerror(code)}")


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
