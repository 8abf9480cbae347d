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
per-container ``upperdir``/``workdir``. The mount itself (with its ``lowerdir+`` fallback for stacks
whose options exceed a page) lives in :mod:`moorage.instances.mounts`, shared with the runc backend.
"""

from __future__ import annotations

import asyncio
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

from moorage.core.errors import InvalidArgument
from moorage.instances import mounts
from moorage.instances.layers import apply_layer

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DONE = ".done"
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"

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
        Raises InvalidArgument without lowers, RuntimeFailure when the kernel refuses (see
        :func:`moorage.instances.mounts.mount_overlay`)."""
        mounts.mount_overlay(lowers, upper, work, target)

    def unmount(self, target: Path) -> None:
        """Unmount a root filesystem; a no-op when nothing is mounted there. When the mount is busy
        (a host process still uses it) it is detached lazily, so the container can be cleaned up."""
        mounts.unmount(target)

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
