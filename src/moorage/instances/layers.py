"""Apply one uncompressed OCI layer tar to a snapshot directory, safely.

:func:`apply_layer` reads the tar as a stream and creates every member itself; it never calls
``tarfile.extract*`` (whose filters either break real root filesystems or let hostile layers write
on the host, see ``runtime-notes.md`` §2). The result is an overlayfs *lower* directory:

* OCI whiteouts become overlay whiteouts: ``.wh.<name>`` → a ``0/0`` character device ``<name>``
  (or, when ``<name>`` is a directory this layer created, ``trusted.overlay.opaque=y`` on it);
  ``.wh..wh..opq`` → ``trusted.overlay.opaque=y`` on the directory. Other ``.wh..wh.*`` names (aufs
  bookkeeping) are skipped.
* Ownership is numeric (``lchown(uid, gid)``; the tar's user and group *names* are ignored), and
  ``chmod`` runs after ``chown`` so setuid/setgid bits survive. Directory modes and all directory
  mtimes are applied last, after their contents were written.
* Extended attributes come from PAX ``SCHILY.xattr.*`` records (binary values recovered with
  ``surrogateescape``), file capabilities included. ``trusted.overlay.*``, ``user.overlay.*`` and
  ``security.selinux`` from the image are dropped: they would change what overlayfs or the host's
  LSM make of the file. ``user.*`` attributes cannot exist on symlinks and device nodes and are
  skipped there.
* Hardlinks to a member of this layer are hard links; hardlinks to a file of a lower layer are
  *copies* of it (contents, owner, mode, xattrs, mtime), because snapshots must not share inodes.
* Symlink targets are stored verbatim. They mean something only inside the container; nothing here
  ever follows a symlink on the host.
* Members whose parent directories are missing get them created; when the directory exists in a
  lower layer, its owner, mode and mtime are copied, so that e.g. ``/tmp`` keeps ``01777``.

Safety rules (violations raise :class:`HostileLayer` and name the member):

* A leading ``/`` is **stripped**, as docker and containerd do: ``/etc/passwd`` in a layer means
  the rootfs' ``etc/passwd``. Stripping is safe because every path is resolved below ``dest``.
* Names (and hardlink targets) with a ``..`` component, or containing NUL, are refused.
* Paths are resolved one component at a time with ``openat(O_NOFOLLOW|O_DIRECTORY)`` from a
  descriptor of ``dest``: a symlink among the parents of a member is refused, so nothing is ever
  written through a symlink, whatever it points to. Files are created with
  ``O_CREAT|O_EXCL|O_NOFOLLOW``.
* A hardlink target must be a non-directory that exists in this layer (already unpacked) or in the
  lower layers (looked up with overlay semantics: whiteouts and opaque directories hide, symlinks are
  not followed). Anything else, a host path in particular, is refused.

The caller owns ``dest`` and must discard it when this raises: a partial snapshot is never valid.

Unprivileged use: when not root, ownership is left to the calling user (as ``umoci --rootless``
does) and device nodes, ``trusted.*`` attributes and file capabilities raise
:class:`LayerNotSupported`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from moorage.core.errors import InvalidArgument, NotSupported, Unavailable

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

_AUFS_META_PREFIX = ".wh..wh."
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_DROPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_DROPPED_XATTRS = frozenset({"security.selinux"})
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_IMPLICIT_DIR_MODE = 0o755
# Host-side failures that say nothing about the layer itself.
_HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE})


class HostileLayer(InvalidArgument):
    """The layer tries to reach outside its snapshot (``..``, a write through a symlink, a hardlink
    to a file that is not in the image, a NUL in a name)."""

    default_code = "HostileLayer"


class MalformedLayer(InvalidArgument):
    """The stream is not a valid layer tar (truncated, unsupported member type, impossible tree)."""

    default_code = "MalformedLayer"


class LayerNotSupported(NotSupported):
    """The layer is valid but this host cannot apply it (not root, no xattr support)."""

    default_code = "LayerNotSupported"


class LayerApplyFailed(Unavailable):
    """The host failed while writing the snapshot (disk full, I/O error); retrying may work."""

    default_code = "LayerApplyFailed"


def apply_layer(stream: BinaryIO, dest: Path, *, lower_layers: Sequence[Path] = ()) -> str:
    """Unpack the uncompressed layer tar ``stream`` into the existing directory ``dest``.

    ``lower_layers`` are the unpacked snapshots below this one, **topmost first** (overlay's
    ``lowerdir`` order); they are only read, for hardlinks into them and for the metadata of
    implied parent directories. The stream is read to EOF. Returns the layer's diff_id,
    ``sha256:<hex>`` of all bytes read.

    Raises :class:`HostileLayer`, :class:`MalformedLayer`, :class:`LayerNotSupported` or
    :class:`LayerApplyFailed`; ``dest`` is then partially written and must be discarded.
    """
    reader = _HashingReader(stream)
    with _LayerApplier(dest, lower_layers) as applier:
        try:
            with tarfile.open(
                fileobj=cast(IO[bytes], reader), mode="r|", encoding="utf-8", errors="surrogateescape"
            ) as archive:
                for member in archive:
                    applier.apply(archive, member)
        except tarfile.TarError as exc:
            raise MalformedLayer(f"layer is not a valid tar stream: {exc}") from exc
        applier.finish()
    reader.drain()
    return f"sha256:{reader.hexdigest()}"


class _HashingReader:
    """Passes reads through while hashing every byte handed out (all tarfile's stream mode needs)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


@dataclass
class _Found:
    """A name located in the layer stack: ``layer`` 0 is the layer being applied."""

    layer: int
    dir_fd: int  # owned: the caller closes it
    name: str
    st: os.stat_result


@dataclass
class _DeferredDir:
    mode: int | None
    mtime_ns: int | None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class _LayerApplier:
    """The state of one application: descriptors of ``dest`` and the lower layers, and the
    directory metadata that is applied at the end."""

    def __init__(self, dest: Path, lower_layers: Sequence[Path]) -> None:
        self._privileged = os.geteuid() == 0
        self._stack: list[int] = []  # dest first, then the lower layers top first
        self._deferred: dict[tuple[str, ...], _DeferredDir] = {}
        self._cached: tuple[tuple[str, ...], int] | None = None
        self._member = ""
        try:
            for path in (dest, *lower_layers):
                self._stack.append(os.open(path, _DIR_FLAGS))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _LayerApplier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._drop_cache()
        for fd in self._stack:
            os.close(fd)
        self._stack.clear()

    @property
    def _root(self) -> int:
        return self._stack[0]

    # --- members -------------------------------------------------------------------------------

    def apply(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._member = member.name
        try:
            self._apply(archive, member)
        except (HostileLayer, MalformedLayer, LayerNotSupported, LayerApplyFailed):
            raise
        except OSError as exc:
            raise self._translate(exc) from exc
        except ValueError as exc:  # e.g. a NUL in an xattr name or symlink target
            raise MalformedLayer(f"layer member {self._member!r}: {exc}") from exc

    def _apply(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self._split(member.name)
        if not parts:  # "./" or "/": the snapshot root itself
            if not member.isdir():
                raise HostileLayer(f"layer member {member.name!r} would replace the root directory")
            self._set_dir_metadata(self._root, (), member)
            return
        if any(part.startswith(WHITEOUT_PREFIX) for part in parts[:-1]):
            if any(part.startswith(_AUFS_META_PREFIX) for part in parts[:-1]):
                return  # inside aufs bookkeeping (.wh..wh.plnk/...): not content
            raise MalformedLayer(f"layer member {member.name!r} is below a whiteout")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._apply_whiteout(parts)
            return
        parent = self._parent_fd(parts[:-1])
        if member.isreg():
            self._replace(parent, parts, member)
            self._write_file(archive, member, parent, base)
        elif member.isdir():
            self._make_dir(member, parent, parts)
        elif member.issym():
            if "\x00" in member.linkname:
                raise HostileLayer(f"layer member {member.name!r} has a NUL in its symlink target")
            self._replace(parent, parts, member)
            os.symlink(member.linkname, base, dir_fd=parent)
            self._set_link_metadata(parent, base, member)
        elif member.islnk():
            self._make_hardlink(member, parts)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._make_node(member, parent, parts)
        else:
            raise MalformedLayer(f"layer member {member.name!r} has unsupported type {member.type!r}")

    def _split(self, name: str, what: str = "name") -> list[str]:
        """The member path as components below ``dest``; a leading ``/`` is stripped."""
        if "\x00" in name:
            raise HostileLayer(f"layer member {self._member!r}: {what} contains a NUL byte")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise HostileLayer(f"layer member {self._member!r}: {what} {name!r} contains '..'")
        return parts

    def _replace(self, parent: int, parts: Sequence[str], member: tarfile.TarInfo) -> bool:
        """Remove whatever this layer already has at ``parts`` (a later member wins). Returns
        whether it was a whiteout."""
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if member.isdir():
                return False  # directories merge; only metadata changes
            self._forget_dir(tuple(parts))
            shutil.rmtree(name, dir_fd=parent)
            return False
        os.unlink(name, dir_fd=parent)
        return _is_whiteout(st)

    def _write_file(self, archive: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str) -> None:
        source = archive.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have data
            raise MalformedLayer(f"layer member {member.name!r} has no data")
        fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
        with open(fd, "wb", closefd=True) as out:
            shutil.copyfileobj(source, out, _CHUNK)
            out.flush()
            self._set_fd_metadata(out.fileno(), member)

    def _make_dir(self, member: tarfile.TarInfo, parent: int, parts: list[str]) -> None:
        name = parts[-1]
        was_whiteout = self._replace(parent, parts, member)
        # It may exist already (an earlier member or an implied parent): its metadata is replaced.
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            if was_whiteout:
                # This layer deleted the lower directory and created a new one: hide lower contents.
                self._set_opaque(fd)
            self._set_dir_metadata(fd, tuple(parts), member)
        finally:
            os.close(fd)

    def _make_node(self, member: tarfile.TarInfo, parent: int, parts: list[str]) -> None:
        name = parts[-1]
        if member.isfifo():
            kind = stat.S_IFIFO
        else:
            if not self._privileged:
                raise LayerNotSupported(
                    f"layer member {member.name!r} is a device node; creating it needs root"
                )
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        self._replace(parent, parts, member)
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        self._set_link_metadata(parent, name, member)

    def _make_hardlink(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        target_parts = self._split(member.linkname, "hardlink target")
        if not target_parts:
            raise HostileLayer(f"layer member {member.name!r} is a hardlink to the root directory")
        found = self._lookup(target_parts)
        if found is None or stat.S_ISDIR(found.st.st_mode):
            if found is not None:
                os.close(found.dir_fd)
            raise HostileLayer(
                f"layer member {member.name!r} is a hardlink to {member.linkname!r}, "
                "which is not a file of this layer or a lower one"
            )
        try:
            parent = self._parent_fd(parts[:-1])
            name = parts[-1]
            try:
                existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if found.layer == 0:
                if existing is not None and (existing.st_dev, existing.st_ino) == (
                    found.st.st_dev,
                    found.st.st_ino,
                ):
                    return  # already the same file
                self._replace(parent, parts, member)
                os.link(found.name, name, src_dir_fd=found.dir_fd, dst_dir_fd=parent, follow_symlinks=False)
            else:
                self._replace(parent, parts, member)
                self._copy_from_lower(found, parent, name)
        finally:
            os.close(found.dir_fd)

    def _copy_from_lower(self, found: _Found, parent: int, name: str) -> None:
        """A hardlink into a lower snapshot becomes an independent copy of that file."""
        st = found.st
        if stat.S_ISREG(st.st_mode):
            src = os.open(found.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=found.dir_fd)
            try:
                dst = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
                try:
                    with open(src, "rb", closefd=False) as fin, open(dst, "wb", closefd=False) as fout:
                        shutil.copyfileobj(fin, fout, _CHUNK)
                    if self._privileged:
                        os.fchown(dst, st.st_uid, st.st_gid)
                    os.fchmod(dst, stat.S_IMODE(st.st_mode))
                    for xname in os.listxattr(src):
                        if _keep_xattr(xname):
                            os.setxattr(dst, xname, os.getxattr(src, xname))
                    os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            return
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(found.name, dir_fd=found.dir_fd), name, dir_fd=parent)
        else:
            if not stat.S_ISFIFO(st.st_mode) and not self._privileged:
                raise LayerNotSupported(f"layer member {self._member!r} links to a device node")
            os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=parent)
        if self._privileged:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            # A node we just created in a directory only we write to: following is harmless.
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=parent)
        os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _apply_whiteout(self, parts: list[str]) -> None:
        base = parts[-1]
        if base == OPAQUE_MARKER:
            fd = self._open_dir(parts[:-1], create=True)
            try:
                self._set_opaque(fd)
            finally:
                os.close(fd)
            return
        if base.startswith(_AUFS_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        target = base[len(WHITEOUT_PREFIX) :]
        if target == "..":
            raise HostileLayer(f"layer member {self._member!r} whites out '..'")
        if target in ("", "."):
            raise MalformedLayer(f"layer member {self._member!r} is a whiteout without a name")
        parent = self._parent_fd(parts[:-1])
        try:
            st = os.stat(target, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
            return
        if stat.S_ISDIR(st.st_mode):
            # Created by this layer; the whiteout removes what lower layers had there.
            fd = os.open(target, _DIR_FLAGS, dir_fd=parent)
            try:
                self._set_opaque(fd)
            finally:
                os.close(fd)
        # A non-directory of this layer already hides the lower entry.

    # --- metadata -------------------------------------------------------------------------------

    def _set_fd_metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid), then xattrs (chown clears capabilities), then
        times, on a regular file."""
        if self._privileged:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for xname, value in self._xattrs(member):
            os.setxattr(fd, xname, value)
        mtime = _ns(member.mtime)
        os.utime(fd, ns=(mtime, mtime))

    def _set_dir_metadata(self, fd: int, key: tuple[str, ...], member: tarfile.TarInfo) -> None:
        if self._privileged:
            os.fchown(fd, member.uid, member.gid)
        for xname, value in self._xattrs(member):
            os.setxattr(fd, xname, value)
        # Mode and mtime wait for the end: writing children would change the mtime, and a
        # read-only mode would stop an unprivileged applier from writing them.
        self._deferred[key] = _DeferredDir(member.mode & 0o7777, _ns(member.mtime))

    def _set_link_metadata(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        """Metadata of a symlink, device node or fifo, never following it."""
        if self._privileged:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        if not member.issym():
            # A node we just created in a directory only we write to: following is harmless.
            os.chmod(name, member.mode & 0o7777, dir_fd=parent)
        # The *xattr calls take no dir_fd; /proc/self/fd/N names the directory we hold.
        path = f"/proc/self/fd/{parent}/{name}"
        for xname, value in self._xattrs(member):
            if not xname.startswith("user."):  # user.* is not allowed on these inode types
                os.setxattr(path, xname, value, follow_symlinks=False)
        mtime = _ns(member.mtime)
        os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _xattrs(self, member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        found = []
        for key, value in member.pax_headers.items():
            if not key.startswith(_PAX_XATTR_PREFIX):
                continue
            xname = key[len(_PAX_XATTR_PREFIX) :]
            if not xname or "\x00" in xname:
                raise MalformedLayer(f"layer member {member.name!r} has an invalid xattr name {xname!r}")
            if _keep_xattr(xname):
                found.append((xname, value.encode("utf-8", "surrogateescape")))
        return found

    def _set_opaque(self, fd: int) -> None:
        if not self._privileged:
            raise LayerNotSupported(f"layer member {self._member!r}: opaque directories need root")
        os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")

    def _forget_dir(self, prefix: tuple[str, ...]) -> None:
        """A directory tree is being removed: drop its pending metadata, and the cached descriptor
        if it lies inside (the cache usually holds the tree's parent, which stays valid)."""
        size = len(prefix)
        if self._cached is not None and self._cached[0][:size] == prefix:
            self._drop_cache()
        for key in [key for key in self._deferred if key[:size] == prefix]:
            del self._deferred[key]

    def finish(self) -> None:
        """Apply directory modes and mtimes, after every member was written. Deepest first, so
        that a restrictive parent mode never stands in the way of its children."""
        self._drop_cache()
        for key, meta in sorted(self._deferred.items(), key=lambda item: -len(item[0])):
            self._member = "/".join(key) or "/"
            try:
                fd = self._open_dir(key, create=False)
                try:
                    if meta.mode is not None:
                        os.fchmod(fd, meta.mode)
                    if meta.mtime_ns is not None:
                        os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
                finally:
                    os.close(fd)
            except OSError as exc:
                raise self._translate(exc) from exc

    # --- path resolution ------------------------------------------------------------------------

    def _parent_fd(self, parts: Sequence[str]) -> int:
        """A borrowed descriptor of directory ``parts`` (created if missing), valid until the next
        call. Members come grouped by directory, so one cached entry saves most of the walks."""
        key = tuple(parts)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        fd = self._open_dir(parts, create=True)
        self._drop_cache()
        self._cached = (key, fd)
        return fd

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_dir(self, parts: Sequence[str], *, create: bool) -> int:
        """Open ``dest/parts`` one component at a time, never following a symlink."""
        fd = os.dup(self._root)
        try:
            for depth in range(len(parts)):
                nxt = self._step(fd, parts[: depth + 1], create=create)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _step(self, fd: int, prefix: Sequence[str], *, create: bool) -> int:
        name = prefix[-1]
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            self._make_implied_dir(fd, prefix)
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        where = "/".join(prefix)
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise HostileLayer(
                f"layer member {self._member!r}: {where!r} is a symlink; refusing to write through it"
            )
        if create and _is_whiteout(st):
            # Deleted from the lower layers, then written into again: a fresh, opaque directory.
            os.unlink(name, dir_fd=fd)
            os.mkdir(name, _IMPLICIT_DIR_MODE, dir_fd=fd)
            new = os.open(name, _DIR_FLAGS, dir_fd=fd)
            self._set_opaque(new)
            self._deferred[tuple(prefix)] = _DeferredDir(_IMPLICIT_DIR_MODE, None)
            return new
        raise MalformedLayer(f"layer member {self._member!r}: {where!r} is not a directory")

    def _make_implied_dir(self, fd: int, prefix: Sequence[str]) -> None:
        """A parent the tar does not list: copy the lower layers' directory when there is one."""
        found = self._lookup(prefix)
        os.mkdir(prefix[-1], _IMPLICIT_DIR_MODE, dir_fd=fd)
        meta = _DeferredDir(_IMPLICIT_DIR_MODE, None)
        if found is not None:
            os.close(found.dir_fd)
            if stat.S_ISDIR(found.st.st_mode):
                if self._privileged:
                    os.chown(prefix[-1], found.st.st_uid, found.st.st_gid, dir_fd=fd, follow_symlinks=False)
                meta = _DeferredDir(stat.S_IMODE(found.st.st_mode), found.st.st_mtime_ns)
        self._deferred[tuple(prefix)] = meta

    def _lookup(self, parts: Sequence[str]) -> _Found | None:
        """Find ``parts`` in the stack (this layer, then the lower ones) the way overlayfs would:
        the topmost entry wins, whiteouts hide, opaque directories stop the descent, a non-directory
        (a symlink included: never followed) hides the lower directories."""
        opened: list[int] = []  # every descriptor this lookup opened; closed on the way out
        try:
            layers = list(enumerate(self._stack))
            for depth, name in enumerate(parts):
                last = depth == len(parts) - 1
                below: list[tuple[int, int]] = []
                for index, fd in layers:
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if _is_whiteout(st):
                        break
                    if last:
                        return _Found(index, os.dup(fd), name, st)
                    if not stat.S_ISDIR(st.st_mode):
                        break
                    opened.append(os.open(name, _DIR_FLAGS, dir_fd=fd))
                    below.append((index, opened[-1]))
                    if _is_opaque(opened[-1]):
                        break
                layers = below
                if not layers:
                    return None
            return None
        finally:
            for fd in opened:
                os.close(fd)

    def _translate(self, exc: OSError) -> Exception:
        text = f"layer member {self._member!r}: {exc.strerror or exc}"
        if exc.errno in _HOST_ERRNOS:
            return LayerApplyFailed(text)
        if exc.errno in (errno.EPERM, errno.EACCES) and not self._privileged:
            return LayerNotSupported(f"{text} (unpacking as a non-root user)")
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return LayerNotSupported(f"{text} (the snapshot filesystem lacks support)")
        return MalformedLayer(text)


def _keep_xattr(name: str) -> bool:
    return name not in _DROPPED_XATTRS and not name.startswith(_DROPPED_XATTR_PREFIXES)


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OVERLAY_OPAQUE_XATTR) == b"y"
    except OSError:  # ENODATA, or trusted.* unreadable without root
        return False
