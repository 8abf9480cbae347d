"""Layer tars built in memory for the unpacker and snapshotter tests."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest

from moorage.instances.layers import apply_layer

MTIME = 1_600_000_000
# security.capability for cap_net_raw+ep (VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, bit 13).
CAP_NET_RAW_EP = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)

F = TypeVar("F", bound=Callable[..., object])


def needs_root(test: F) -> F:
    """Marks a test that needs real root (ownership, device nodes, trusted.* xattrs, mounts)."""
    skip = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (lchown, mknod, trusted.* xattrs, mount)")
    return pytest.mark.root(skip(test))  # type: ignore[no-any-return]


class LayerTar:
    """A PAX tar written member by member; :meth:`data` closes it and returns the bytes."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        # Closed by data(): members are added one call at a time.
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def _add(
        self,
        info: tarfile.TarInfo,
        *,
        data: bytes | None = None,
        mode: int,
        uid: int = 0,
        gid: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
        mtime: int = MTIME,
    ) -> LayerTar:
        info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
        info.uname = info.gname = "root"  # names must be ignored: ownership is numeric
        if xattrs:
            info.pax_headers = {
                f"SCHILY.xattr.{name}": value.decode("utf-8", "surrogateescape")
                for name, value in xattrs.items()
            }
        if data is not None:
            info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    def file(
        self,
        name: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
        mtime: int = MTIME,
    ) -> LayerTar:
        info = tarfile.TarInfo(name)
        return self._add(info, data=data, mode=mode, uid=uid, gid=gid, xattrs=xattrs, mtime=mtime)

    def dir(
        self,
        name: str,
        *,
        mode: int = 0o755,
        uid: int = 0,
        gid: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
        mtime: int = MTIME,
    ) -> LayerTar:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        return self._add(info, mode=mode, uid=uid, gid=gid, xattrs=xattrs, mtime=mtime)

    def symlink(self, name: str, target: str, *, uid: int = 0, gid: int = 0) -> LayerTar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return self._add(info, mode=0o777, uid=uid, gid=gid)

    def hardlink(self, name: str, target: str) -> LayerTar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        return self._add(info, mode=0o644)

    def device(self, name: str, kind: bytes, major: int, minor: int, *, mode: int = 0o666) -> LayerTar:
        info = tarfile.TarInfo(name)
        info.type, info.devmajor, info.devminor = kind, major, minor
        return self._add(info, mode=mode)

    def fifo(self, name: str, *, mode: int = 0o600) -> LayerTar:
        info = tarfile.TarInfo(name)
        info.type = tarfile.FIFOTYPE
        return self._add(info, mode=mode)

    def raw(self, info: tarfile.TarInfo, data: bytes | None = None) -> LayerTar:
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    def data(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def apply(data: bytes, dest: Path, *lowers: Path) -> str:
    """Apply ``data`` to ``dest`` (created here); ``lowers`` topmost first."""
    dest.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(data), dest, lower_layers=lowers)
