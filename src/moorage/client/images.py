"""Images on local disk, without Docker: what ``moorage image push`` reads and ``pull`` writes.

A push source (:func:`open_source`) is one of

* an **OCI image layout** directory (``oci-layout`` + ``index.json`` + ``blobs/``), optionally
  with ``:<ref>`` naming an entry of ``index.json`` by its ``org.opencontainers.image.ref.name``
  annotation or its digest (``layout:v1``, like skopeo's ``oci:layout:v1``). Pushed as it is,
  so digests are kept; an index is pushed with every manifest it lists.
* an **image tarball**: a docker-archive as ``docker save`` writes it (``manifest.json``, a
  config and layer tars; ``:<repo:tag>`` picks one of several images by its ``RepoTags``), or
  an OCI layout packed as a tar. Compressed tarballs (gzip, bzip2, xz) are unpacked to a
  temporary file first. A docker-archive becomes an OCI image: its config is kept byte for byte,
  uncompressed layers are gzip-compressed (deterministically) on the way.
* a **plain directory**, the root file system of a one-layer image (:func:`build_from_directory`),
  with entrypoint, command, environment, working directory and exposed ports given by
  :class:`BuildOptions`. The layer is a deterministic tar: entries sorted, mtimes 0, owner and
  group 0 with no names, permission bits kept, symlinks stored as symlinks (never followed).
  A symlink whose target climbs out of the directory is refused.

Everything streams through temporary files under a work directory the caller owns: memory
stays flat whatever the size of a layer. Malformed sources raise :class:`InvalidSource`.

:class:`LayoutWriter` writes what ``pull`` fetches as an OCI image layout.
"""

from __future__ import annotations

import bz2
import contextlib
import datetime
import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from moorage.client.oci import (
    IMAGE_MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    READ_SIZE,
    BlobSource,
    Descriptor,
    ImageBundle,
    Manifest,
    digest_of,
)
from moorage.core.errors import InvalidArgument
from moorage.core.platform import DEFAULT_PLATFORM, Platform

REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COMPRESSED_TAR_MAGIC = (_GZIP_MAGIC, b"BZh", b"\xfd7zXZ\x00")
_MAX_JSON_BYTES = 8 * 1024 * 1024
#: Epoch of every built image: a build depends on the files only, not on when it ran.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class InvalidSource(InvalidArgument):
    """The push source is not a usable image layout, archive or directory."""

    default_code = "InvalidImageSource"


class PathEscapesSource(InvalidSource):
    """A symlink of a directory being built points outside of it."""

    default_code = "PathEscapesSource"


# -- blob sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BytesBlob:
    """A small blob held in memory (configs, manifests)."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        yield io.BytesIO(self.data)


@dataclass(frozen=True)
class FileBlob:
    """``size`` bytes of a file from ``offset`` on (a layout's blob file, or a member of an
    uncompressed tar); each ``open`` is a handle of its own, so uploads can run in parallel."""

    path: Path
    digest: str
    size: int
    media_type: str
    offset: int = 0

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            yield handle


# -- where a layout's files are -------------------------------------------------------------------


class _Files(Protocol):
    """Named files of a layout or archive (a directory, or the members of a tar)."""

    origin: str

    def size(self, name: str) -> int | None: ...

    def blob(self, name: str, digest: str, size: int, media_type: str) -> FileBlob: ...

    def read(self, name: str, limit: int = _MAX_JSON_BYTES) -> bytes: ...


class _DirectoryFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = str(root)

    def _path(self, name: str) -> Path:
        clean = posixpath.normpath(name)
        if clean.startswith(("/", "../")) or clean == "..":
            raise InvalidSource(f"{self.origin}: '{name}' is outside of the layout")
        return self.root / clean

    def size(self, name: str) -> int | None:
        path = self._path(name)
        return path.stat().st_size if path.is_file() else None

    def blob(self, name: str, digest: str, size: int, media_type: str) -> FileBlob:
        return FileBlob(self._path(name), digest, size, media_type)

    def read(self, name: str, limit: int = _MAX_JSON_BYTES) -> bytes:
        size = self.size(name)
        if size is None:
            raise InvalidSource(f"{self.origin}: '{name}' is missing")
        if size > limit:
            raise InvalidSource(f"{self.origin}: '{name}' is larger than {limit} bytes")
        return self._path(name).read_bytes()


class _TarFiles:
    """Regular-file members of an uncompressed tar, read in place by offset."""

    def __init__(self, path: Path, origin: str) -> None:
        self.path = path
        self.origin = origin
        self._members: dict[str, tarfile.TarInfo] = {}
        links: dict[str, str] = {}  # name → the name it stands for
        try:
            with tarfile.open(path, "r:") as tar:
                for member in tar:
                    name = posixpath.normpath(member.name.lstrip("/"))
                    if member.isreg():
                        self._members[name] = member
                    elif member.islnk():
                        links[name] = posixpath.normpath(member.linkname.lstrip("/"))
                    elif member.issym():
                        # docker save (before 25) links repeated layers to the first copy.
                        links[name] = posixpath.normpath(
                            posixpath.join(posixpath.dirname(name), member.linkname)
                        )
        except (tarfile.TarError, OSError) as exc:
            raise InvalidSource(f"{origin}: not a readable tar archive ({exc})") from None
        for name, first in links.items():
            target = first
            for _ in range(8):  # a link to a link, but never a loop
                if target in self._members or target not in links:
                    break
                target = links[target]
            if target in self._members:
                self._members[name] = self._members[target]

    def names(self) -> set[str]:
        return set(self._members)

    def size(self, name: str) -> int | None:
        member = self._members.get(posixpath.normpath(name))
        return member.size if member is not None else None

    def blob(self, name: str, digest: str, size: int, media_type: str) -> FileBlob:
        member = self._members[posixpath.normpath(name)]
        return FileBlob(self.path, digest, size, media_type, member.offset_data)

    def read(self, name: str, limit: int = _MAX_JSON_BYTES) -> bytes:
        size = self.size(name)
        if size is None:
            raise InvalidSource(f"{self.origin}: '{name}' is missing from the archive")
        if size > limit:
            raise InvalidSource(f"{self.origin}: '{name}' is larger than {limit} bytes")
        with self.blob(name, "", size, "").open() as handle:
            return handle.read(size)


# -- the source argument --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """Image configuration for a directory build (ignored for other sources: giving any of
    them with a layout or an archive is refused)."""

    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    env: Sequence[str] = ()
    workdir: str | None = None
    ports: Sequence[str] = ()
    platform: Platform = DEFAULT_PLATFORM
    labels: Sequence[str] = ()

    @property
    def given(self) -> bool:
        """Whether any option differs from its default."""
        lists = (self.env, self.ports, self.labels)
        unset = self.entrypoint is None and self.cmd is None and not self.workdir
        return not unset or any(lists) or self.platform != DEFAULT_PLATFORM


def split_source(text: str) -> tuple[Path, str | None]:
    """``path`` or ``path:ref`` (the whole text wins when it names an existing path);
    :class:`InvalidSource` when no such path exists."""
    whole = Path(text)
    if whole.exists() or whole.is_symlink():
        return whole, None
    # The path is the shortest prefix before a ':' that exists: refs may hold ':' themselves
    # (repo:tag in a docker-archive, sha256:... digests), paths rarely do.
    for position, char in enumerate(text):
        if char == ":" and position and position < len(text) - 1 and Path(text[:position]).exists():
            return Path(text[:position]), text[position + 1 :]
    raise InvalidSource(f"'{text}' does not exist (expected a directory, an OCI layout or an image tarball)")


def open_source(text: str, workdir: Path, options: BuildOptions | None = None) -> ImageBundle:
    """What ``text`` names (see the module docstring) as an :class:`ImageBundle`; temporary
    files go under ``workdir``, which must outlive the push. :class:`InvalidSource`, also for
    files that cannot be read."""
    try:
        return _open_source(text, workdir, options or BuildOptions())
    except OSError as exc:
        where = exc.filename or text
        raise InvalidSource(f"cannot read '{where}': {exc.strerror or exc}") from None


def _open_source(text: str, workdir: Path, options: BuildOptions) -> ImageBundle:
    path, ref = split_source(text)
    if path.is_dir():
        if (path / "oci-layout").is_file():
            _refuse_options(options, "an OCI layout")
            return layout_bundle(_DirectoryFiles(path), ref)
        if ref is not None:
            raise InvalidSource(f"'{path}' is a plain directory: ':{ref}' selects nothing in it")
        return build_from_directory(path, workdir, options)
    if not path.is_file():
        raise InvalidSource(f"'{path}' is neither a directory nor a file")
    _refuse_options(options, "an image tarball")
    files = _TarFiles(_uncompressed(path, workdir), str(path))
    names = files.names()
    if "manifest.json" in names:
        return docker_archive_bundle(files, ref, workdir)
    if "oci-layout" in names and "index.json" in names:
        return layout_bundle(files, ref)
    raise InvalidSource(
        f"'{path}' is neither a docker-archive (no manifest.json) nor an OCI layout "
        "(no oci-layout and index.json)"
    )


def _refuse_options(options: BuildOptions, kind: str) -> None:
    if options.given:
        raise InvalidSource(
            f"--entrypoint, --cmd, --env, --workdir, --port, --label and --platform apply only when "
            f"building from a plain directory, not to {kind}"
        )


def _uncompressed(path: Path, workdir: Path) -> Path:
    """``path`` itself for a plain tar; else the decompressed tar in ``workdir``."""
    with path.open("rb") as handle:
        magic = handle.read(6)
    if not magic.startswith(_COMPRESSED_TAR_MAGIC):
        return path
    target = workdir / "source.tar"
    opener: Any = (
        gzip.open if magic.startswith(_GZIP_MAGIC) else bz2.open if magic.startswith(b"BZh") else lzma.open
    )
    try:
        with opener(path, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, READ_SIZE)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InvalidSource(f"'{path}' cannot be decompressed: {exc}") from None
    return target


# -- OCI image layouts ----------------------------------------------------------------------------


def _blob_name(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError:
        raise InvalidSource(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidSource(f"{what} is not a JSON object")
    return document


def layout_bundle(files: _Files, ref: str | None) -> ImageBundle:
    """The entry of ``index.json`` that ``ref`` names (or its only entry) with everything it
    references. :class:`InvalidSource` when the layout is incomplete or inconsistent."""
    origin = files.origin
    layout = _json(files.read("oci-layout"), f"{origin}: oci-layout")
    if not isinstance(layout.get("imageLayoutVersion"), str):
        raise InvalidSource(f"{origin}: oci-layout has no imageLayoutVersion")
    index = _json(files.read("index.json"), f"{origin}: index.json")
    raw_entries = index.get("manifests")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise InvalidSource(f"{origin}: index.json lists no manifests")
    try:
        entries = [
            Descriptor.from_json(item, f"index.json manifests[{i}]") for i, item in enumerate(raw_entries)
        ]
    except InvalidArgument as exc:
        raise InvalidSource(f"{origin}: {exc.message}") from None
    top = _select_entry(entries, ref, origin)
    bundle = _Collector(files)
    top_manifest = bundle.manifest(top)
    return ImageBundle(top_manifest, tuple(bundle.children), bundle.blobs)


def _select_entry(entries: list[Descriptor], ref: str | None, origin: str) -> Descriptor:
    names = [e.annotations.get(REF_NAME) for e in entries]
    if ref is None:
        if len(entries) == 1:
            return entries[0]
        known = ", ".join(n for n in names if n) or "none named"
        raise InvalidSource(f"{origin} holds {len(entries)} images; name one as {origin}:<ref> ({known})")
    found = [e for e in entries if e.annotations.get(REF_NAME) == ref or e.digest == ref]
    if not found:
        known = ", ".join(n for n in names if n) or "none named"
        raise InvalidSource(f"{origin} has no image named '{ref}' (refs: {known})")
    return found[0]


class _Collector:
    """Walks a layout from one descriptor: manifests (children before their index) and blobs."""

    def __init__(self, files: _Files) -> None:
        self._files = files
        self.children: list[Manifest] = []
        self.blobs: dict[str, BlobSource] = {}
        self._seen: set[str] = set()

    def manifest(self, descriptor: Descriptor, parent: str | None = None) -> Manifest:
        origin = self._files.origin
        name = _blob_name(descriptor.digest)
        size = self._files.size(name)
        if size is None:
            where = f"listed by {parent}" if parent else "named in index.json"
            raise InvalidSource(f"{origin}: manifest {descriptor.digest} ({where}) is missing")
        body = self._files.read(name)
        if digest_of(body, descriptor.digest.partition(":")[0]) != descriptor.digest:
            raise InvalidSource(f"{origin}: {name} does not match its digest")
        try:
            manifest = Manifest.of(body)
            manifest = Manifest(descriptor.digest, manifest.media_type, body)
            if manifest.is_index:
                for entry in manifest.entries():
                    if entry.digest not in self._seen:
                        self._seen.add(entry.digest)
                        self.children.append(self.manifest(entry, descriptor.digest))
            elif manifest.media_type in IMAGE_MANIFEST_TYPES:
                for blob in (manifest.config(), *manifest.layers()):
                    self._blob(blob, descriptor.digest)
        except InvalidArgument as exc:
            raise InvalidSource(f"{origin}: manifest {descriptor.digest}: {exc.message}") from None
        return manifest

    def _blob(self, descriptor: Descriptor, manifest: str) -> None:
        if descriptor.digest in self.blobs:
            return
        name = _blob_name(descriptor.digest)
        size = self._files.size(name)
        if size is None:
            raise InvalidSource(
                f"{self._files.origin}: blob {descriptor.digest} of manifest {manifest} is missing"
            )
        if size != descriptor.size:
            raise InvalidSource(
                f"{self._files.origin}: blob {descriptor.digest} has {size} bytes, the manifest says "
                f"{descriptor.size}"
            )
        self.blobs[descriptor.digest] = self._files.blob(name, descriptor.digest, size, descriptor.media_type)


# -- docker-archive -------------------------------------------------------------------------------


def docker_archive_bundle(files: _TarFiles, ref: str | None, workdir: Path) -> ImageBundle:
    """One image of a ``docker save`` archive as an OCI image (config kept byte for byte)."""
    origin = files.origin
    try:
        entries = json.loads(files.read("manifest.json"))
    except ValueError:
        raise InvalidSource(f"{origin}: manifest.json is not JSON") from None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InvalidSource(f"{origin}: manifest.json lists no images")
    entry = _docker_entry(entries, ref, origin)
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise InvalidSource(f"{origin}: manifest.json entry without Config and Layers")
    config = files.read(config_name)
    document = _json(config, f"{origin}: {config_name}")
    rootfs = document.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
        raise InvalidSource(
            f"{origin}: the config lists {len(diff_ids or [])} diff_ids for {len(layer_names)} layers"
        )
    config_blob = BytesBlob(OCI_CONFIG, config)
    blobs: dict[str, BlobSource] = {config_blob.digest: config_blob}
    layers: list[Descriptor] = []
    for position, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
        if not isinstance(name, str) or files.size(name) is None:
            raise InvalidSource(f"{origin}: layer {position} ({name}) is missing from the archive")
        blob = _archive_layer(files, name, str(diff_id), workdir / f"layer-{position}.tar.gz")
        blobs.setdefault(blob.digest, blob)
        layers.append(Descriptor(blob.media_type, blob.digest, blob.size))
    return ImageBundle(_image_manifest(config_blob, layers), (), blobs)


def _docker_entry(entries: list[dict[str, Any]], ref: str | None, origin: str) -> dict[str, Any]:
    def tags(entry: dict[str, Any]) -> list[str]:
        found = entry.get("RepoTags")
        return [str(t) for t in found] if isinstance(found, list) else []

    if ref is None:
        if len(entries) == 1:
            return entries[0]
        known = ", ".join(t for e in entries for t in tags(e)) or "untagged"
        raise InvalidSource(
            f"{origin} holds {len(entries)} images; name one as {origin}:<repo:tag> ({known})"
        )
    for entry in entries:
        for tag in tags(entry):
            if tag == ref or tag.endswith("/" + ref):
                return entry
    known = ", ".join(t for e in entries for t in tags(e)) or "untagged"
    raise InvalidSource(f"{origin} has no image tagged '{ref}' ({known})")


def _archive_layer(files: _TarFiles, name: str, diff_id: str, target: Path) -> FileBlob:
    """A layer of the archive as pushed: compressed layers as they are, uncompressed ones
    gzipped into ``target`` (checked against ``diff_id`` on the way)."""
    size = files.size(name) or 0
    member = files.blob(name, "", size, "")
    with member.open() as handle:
        magic = handle.read(4) if size >= 4 else b""
    if magic.startswith(_GZIP_MAGIC) or magic == _ZSTD_MAGIC:
        with member.open() as handle:
            digest = _hash_stream(handle, size)
        media_type = OCI_LAYER_GZIP if magic.startswith(_GZIP_MAGIC) else OCI_LAYER_ZSTD
        return files.blob(name, digest, size, media_type)
    with member.open() as source:
        uncompressed, compressed, written = _gzip_into(source, size, target)
    if uncompressed != diff_id:
        raise InvalidSource(f"{files.origin}: layer '{name}' does not match its diff_id {diff_id}")
    return FileBlob(target, compressed, written, OCI_LAYER_GZIP)


def _hash_stream(handle: IO[bytes], size: int) -> str:
    hasher = hashlib.sha256()
    remaining = size
    while remaining > 0:
        chunk = handle.read(min(READ_SIZE, remaining))
        if not chunk:
            break
        hasher.update(chunk)
        remaining -= len(chunk)
    return f"sha256:{hasher.hexdigest()}"


class _HashingWriter(io.RawIOBase):
    """Counts and hashes what is written through it into ``sink``."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.hasher = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.hasher.update(chunk)
        self.count += len(chunk)
        self._sink.write(chunk)
        return len(chunk)

    @property
    def digest(self) -> str:
        return f"sha256:{self.hasher.hexdigest()}"


@contextlib.contextmanager
def _gzip_writer(target: Path) -> Iterator[tuple[_HashingWriter, _HashingWriter]]:
    """``(uncompressed, compressed)`` hashing writers; writes to the first are gzipped into
    ``target`` with a fixed header (no name, mtime 0), so equal input gives equal output."""
    with target.open("wb") as out:
        compressed = _HashingWriter(out)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
            yield uncompressed, compressed
        out.flush()


def _gzip_into(source: IO[bytes], size: int, target: Path) -> tuple[str, str, int]:
    """Gzip ``size`` bytes of ``source`` into ``target``: (uncompressed digest, compressed
    digest, compressed size)."""
    with _gzip_writer(target) as (uncompressed, compressed):
        remaining = size
        while remaining > 0:
            chunk = source.read(min(READ_SIZE, remaining))
            if not chunk:
                raise InvalidSource(f"'{target.name}': the archive member ends early")
            uncompressed.write(chunk)
            remaining -= len(chunk)
    return uncompressed.digest, compressed.digest, compressed.count


def _image_manifest(config: BytesBlob, layers: Sequence[Descriptor]) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [layer.to_json() for layer in layers],
    }
    return Manifest.of(json.dumps(document, indent=2).encode(), OCI_MANIFEST)


# -- building from a directory --------------------------------------------------------------------


def build_from_directory(root: Path, workdir: Path, options: BuildOptions) -> ImageBundle:
    """A one-layer OCI image of ``root`` (see the module docstring). :class:`PathEscapesSource`
    for a symlink that points outside ``root``; :class:`InvalidSource` for sockets, unreadable
    files, or an absolute entrypoint that is not in the directory."""
    root = root.resolve()
    _config(options, "sha256:" + "0" * 64)  # refuse bad options before the (long) build
    _check_entrypoint(root, options)
    target = workdir / "layer.tar.gz"
    with (
        _gzip_writer(target) as (uncompressed, compressed),
        tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path, name in _walk(root):
            entry, handle = _entry(root, path, name)
            if handle is None:
                tar.addfile(entry)
                continue
            with handle:
                try:
                    tar.addfile(entry, handle)
                except OSError as exc:  # changed or vanished while being read
                    raise InvalidSource(f"cannot read '{path}': {exc}") from None
    layer = Descriptor(OCI_LAYER_GZIP, compressed.digest, compressed.count)
    config = BytesBlob(OCI_CONFIG, _config(options, uncompressed.digest))
    blobs: dict[str, BlobSource] = {
        config.digest: config,
        layer.digest: FileBlob(target, layer.digest, layer.size, OCI_LAYER_GZIP),
    }
    return ImageBundle(_image_manifest(config, [layer]), (), blobs)


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Every entry under ``root`` (not ``root`` itself): a directory before its contents,
    siblings sorted by name (bytes), symlinks never followed."""
    try:
        names = sorted(os.listdir(root), key=os.fsencode)
    except OSError as exc:
        raise InvalidSource(f"cannot list '{root}': {exc.strerror}") from None
    stack: list[tuple[Path, str]] = [(root / n, n) for n in reversed(names)]
    while stack:
        path, name = stack.pop()
        yield path, name
        if path.is_dir() and not path.is_symlink():
            try:
                children = sorted(os.listdir(path), key=os.fsencode)
            except OSError as exc:
                raise InvalidSource(f"cannot list '{path}': {exc.strerror}") from None
            stack.extend((path / c, f"{name}/{c}") for c in reversed(children))


def _entry(root: Path, path: Path, name: str) -> tuple[tarfile.TarInfo, IO[bytes] | None]:
    try:
        info = path.lstat()
    except OSError as exc:
        raise InvalidSource(f"cannot read '{path}': {exc.strerror}") from None
    entry = tarfile.TarInfo(name)
    entry.mtime, entry.uid, entry.gid, entry.uname, entry.gname = 0, 0, 0, "", ""
    entry.mode = stat.S_IMODE(info.st_mode)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        entry.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(path)
        _check_link(root, name, entry.linkname)
    elif stat.S_ISREG(mode):
        entry.size = info.st_size
        try:
            return entry, path.open("rb")
        except OSError as exc:
            raise InvalidSource(f"cannot read '{path}': {exc.strerror}") from None
    elif stat.S_ISFIFO(mode):
        entry.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        entry.devmajor, entry.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    else:
        raise InvalidSource(f"'{path}' is a socket or another kind of file an image cannot hold")
    return entry, None


def _check_link(root: Path, name: str, target: str) -> None:
    """Refuse a symlink whose target, read inside the image, climbs above its root: a relative
    target with more ``..`` than the link is deep. (An absolute target names a path of the
    image itself, as ``/bin/sh -> /bin/busybox`` does, and is kept.)"""
    if posixpath.isabs(target):
        return
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise PathEscapesSource(
            f"'{root / name}' is a symlink to '{target}', which points outside of '{root}'; refusing to "
            "build an image that reaches out of its directory"
        )


def _check_entrypoint(root: Path, options: BuildOptions) -> None:
    command = list(options.entrypoint or options.cmd or [])
    program = command[0] if command else ""
    if not program or not program.startswith("/"):
        return  # a bare name is looked up on PATH when the container starts
    path = _inside(root, program)
    if path is None or not path.exists():
        raise InvalidSource(f"the entrypoint '{program}' is not in '{root}'")


def _inside(root: Path, image_path: str, depth: int = 0) -> Path | None:
    """``image_path`` resolved inside ``root`` as the container will see it (symlinks followed
    within the root); ``None`` when a link loops."""
    if depth > 40:
        return None
    current = root
    parts = [p for p in image_path.split("/") if p and p != "."]
    for position, part in enumerate(parts):
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            link = os.readlink(candidate)
            rest = "/".join(parts[position + 1 :])
            base = "/" if posixpath.isabs(link) else "/" + str(current.relative_to(root))
            return _inside(root, posixpath.join(base, link, rest), depth + 1)
        current = candidate
    return current


def _config(options: BuildOptions, diff_id: str) -> bytes:
    env = list(options.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    for item in env:
        if "=" not in item or item.startswith("="):
            raise InvalidSource(f"--env '{item}' is not NAME=VALUE")
    config: dict[str, Any] = {"Env": env}
    if options.entrypoint is not None:
        config["Entrypoint"] = list(options.entrypoint)
    if options.cmd is not None:
        config["Cmd"] = list(options.cmd)
    if options.workdir:
        if not options.workdir.startswith("/"):
            raise InvalidSource(f"--workdir '{options.workdir}' must be an absolute path")
        config["WorkingDir"] = options.workdir
    if options.ports:
        config["ExposedPorts"] = {normalize_port(p): {} for p in options.ports}
    if options.labels:
        labels = {}
        for item in options.labels:
            key, equals, value = item.partition("=")
            if not equals or not key:
                raise InvalidSource(f"--label '{item}' is not KEY=VALUE")
            labels[key] = value
        config["Labels"] = labels
    platform = options.platform
    document: dict[str, Any] = {
        "created": _EPOCH,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _EPOCH, "created_by": "moorage image push (directory)"}],
    }
    if platform.variant:
        document["variant"] = platform.variant
    return json.dumps(document, indent=2, sort_keys=True).encode()


def normalize_port(text: str) -> str:
    """``8080`` → ``8080/tcp``; ``53/udp`` kept; :class:`InvalidSource` otherwise."""
    number, slash, protocol = text.partition("/")
    protocol = protocol.lower() if slash else "tcp"
    if not number.isdigit() or not 0 < int(number) < 65536 or protocol not in ("tcp", "udp", "sctp"):
        raise InvalidSource(f"--port '{text}' is not PORT[/tcp|udp|sctp]")
    return f"{int(number)}/{protocol}"


# -- writing layouts ------------------------------------------------------------------------------


class LayoutWriter:
    """An OCI image layout at ``root`` to add pulled images to: created when missing or empty,
    extended when it is a layout already; anything else is refused (:class:`InvalidSource`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if root.exists() and not root.is_dir():
            raise InvalidSource(f"'{root}' exists and is not a directory")
        if root.is_dir() and any(root.iterdir()) and not (root / "oci-layout").is_file():
            raise InvalidSource(f"'{root}' is not empty and not an OCI image layout")

    def prepare(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            self._write_atomic(layout, json.dumps({"imageLayoutVersion": "1.0.0"}).encode())

    def blob_path(self, digest: str) -> Path:
        path = self.root / _blob_name(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def has(self, descriptor: Descriptor) -> bool:
        path = self.root / _blob_name(descriptor.digest)
        return path.is_file() and path.stat().st_size == descriptor.size

    def write_blob(self, digest: str, data: bytes) -> None:
        if digest_of(data, digest.partition(":")[0]) != digest:
            raise InvalidSource(f"content for {digest} does not match it")
        self._write_atomic(self.blob_path(digest), data)

    def tag(self, descriptor: Descriptor, name: str | None) -> None:
        """Add ``descriptor`` to ``index.json`` under ``name`` (replacing what had that name)."""
        index_path = self.root / "index.json"
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
        entries: list[Any] = []
        if index_path.exists():
            index = _json(index_path.read_bytes(), f"{self.root}: index.json")
            found = index.get("manifests")
            entries = found if isinstance(found, list) else []
        entry = descriptor.to_json()
        if name:
            entry["annotations"] = {**entry.get("annotations", {}), REF_NAME: name}
            entries = [
                e
                for e in entries
                if not (isinstance(e, dict) and (e.get("annotations") or {}).get(REF_NAME) == name)
            ]
        else:
            entries = [
                e for e in entries if not (isinstance(e, dict) and e.get("digest") == descriptor.digest)
            ]
        entries.append(entry)
        index["manifests"] = entries
        self._write_atomic(index_path, json.dumps(index, indent=2).encode())

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)


def config_summary(config: bytes) -> dict[str, Any]:
    """What ``inspect`` shows of an image config (Docker's field names, lower camel case)."""
    try:
        document = json.loads(config)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = {}
    inner = document.get("config")
    inner = inner if isinstance(inner, dict) else {}
    ports = inner.get("ExposedPorts")
    return {
        "os": document.get("os"),
        "architecture": document.get("architecture"),
        "variant": document.get("variant"),
        "entrypoint": inner.get("Entrypoint"),
        "cmd": inner.get("Cmd"),
        "env": inner.get("Env") or [],
        "workingDir": inner.get("WorkingDir") or None,
        "user": inner.get("User") or None,
        "exposedPorts": sorted(ports) if isinstance(ports, dict) else [],
        "labels": inner.get("Labels") or {},
    }
