"""The default blob backend: plain files under one root directory.

Layout::

    <root>/blobs/<alg>/<first two hex digits>/<hex>     committed blobs, immutable
    <root>/ingest/<ingest id>                            ingests (append-only temporary files)

Both trees live under one root so that committing is a ``rename`` within one filesystem: an
ingest is verified, fsynced, renamed into place and the directory fsynced, so a crash at any
point leaves either no file or the complete, verified file at a blob path.

All disk I/O runs in worker threads, batched so the event loop stays responsive and the per-hop
cost stays small next to the copying and hashing: appends in ~1 MiB batches, reads 4 MiB (as
1 MiB chunks) per hop. Appends keep one batch in flight (written and hashed in two threads at
once, both release the GIL) while the loop gathers the next; reads keep one batch read ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import re
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar, TypeVarTuple

from moorage.core.errors import InvalidArgument, Unavailable
from moorage.store.blobs import (
    SUPPORTED_ALGORITHMS,
    BlobNotFound,
    DigestMismatch,
    IngestNotFound,
    OffsetMismatch,
    SizeMismatch,
    parse_digest,
)

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

# Bytes handed to a worker thread per hop: large enough that the hop (~tens of µs) is noise next
# to writing and hashing, small enough that memory stays flat for blobs of any size. Reads hop
# for more at once: the hops of a download cost the event loop per hop, and two batches (one
# being sent, one read ahead) per download is still little memory. They are still yielded as
# chunks of at most 1 MiB, each read straight into its own bytes object (no copying).
_BATCH_BYTES = 1 << 20
_READ_CHUNK = 1 << 20
_READ_BATCH = 4 << 20

_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024

_INGEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def validate_ingest_id(ingest_id: str) -> None:
    """Reject ids that could escape the ingest directory or be unportable file names.

    Allowed: 1..128 characters from ``[A-Za-z0-9._-]``, except ``.`` and ``..``.
    Raises :class:`~moorage.core.errors.InvalidArgument` (code ``BLOB_UPLOAD_INVALID``).
    """
    if not _INGEST_ID.fullmatch(ingest_id) or ingest_id in {".", ".."}:
        raise InvalidArgument(f"invalid ingest id '{ingest_id[:200]}'", code="BLOB_UPLOAD_INVALID")


def validate_range(start: int, end: int | None) -> None:
    """Check a read range: ``0 <= start`` and ``start <= end`` when ``end`` is given.

    An ``end`` past the blob's size is clamped by the readers (as slicing does), so callers can
    pass an HTTP range without a prior ``stat``. Raises
    :class:`~moorage.core.errors.InvalidArgument` (code ``RANGE_INVALID``).
    """
    if start < 0 or (end is not None and end < start):
        raise InvalidArgument(f"invalid byte range [{start}, {end})", code="RANGE_INVALID")


def _storage_failure(exc: OSError) -> Unavailable:
    # The path is left out on purpose: clients must not learn the server's layout.
    return Unavailable(f"blob storage I/O failed: {exc.strerror or type(exc).__name__}")


class _RunningDigest:
    """The sha256 of an ingest's first ``size`` bytes, fed as appends write them.

    Trusted at commit only while ``size`` equals the file size: a failed write, a restart or an
    abort-and-restart of the same id all break that equality and force a re-hash of the file.
    """

    __slots__ = ("hasher", "size")

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0


@dataclass
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class FilesystemBlobStore:
    """A :class:`~moorage.store.blobs.BlobStore` on a local directory.

    The constructor creates the directory tree (synchronously: it runs once, at start-up).
    Storage failures other than "not found" (disk full, permissions) raise
    :class:`~moorage.core.errors.Unavailable`.
    """

    def __init__(self, root: Path) -> None:
        self._blob_dir = root / "blobs"
        self._ingest_dir = root / "ingest"
        for algorithm in SUPPORTED_ALGORITHMS:
            (self._blob_dir / algorithm).mkdir(parents=True, exist_ok=True)
        self._ingest_dir.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, _LockEntry] = {}
        self._running: dict[str, _RunningDigest] = {}

    # -- paths ----------------------------------------------------------------------------------
    def _ingest_path(self, ingest_id: str) -> Path:
        validate_ingest_id(ingest_id)
        return self._ingest_dir / ingest_id

    def _blob_path(self, digest: str) -> tuple[str, str, Path]:
        algorithm, encoded = parse_digest(digest)
        return algorithm, encoded, self._blob_dir / algorithm / encoded[:2] / encoded

    async def _io(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run blocking I/O in a worker thread, translating unexpected OS errors."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except OSError as exc:
            raise _storage_failure(exc) from exc

    @contextlib.asynccontextmanager
    async def _exclusive(self, ingest_id: str) -> AsyncIterator[None]:
        """Serialize work on one ingest. Entries are reference-counted so the table stays as
        small as the set of busy ingests, and a waiter never ends up holding a lock that a
        newcomer has already replaced."""
        entry = self._locks.get(ingest_id)
        if entry is None:
            entry = self._locks[ingest_id] = _LockEntry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[ingest_id]

    # -- writers --------------------------------------------------------------------------------
    async def start_ingest(self, ingest_id: str) -> None:
        """Create an empty ingest; an existing one is left as it is.

        Raises :class:`InvalidArgument` for a malformed id."""
        await self._io(_touch, self._ingest_path(ingest_id))

    async def append(self, ingest_id: str, chunks: AsyncIterator[bytes], *, offset: int) -> int:
        """Append ``chunks`` at ``offset`` and return the new size.

        The offset is checked under the ingest's lock, before any chunk is consumed
        (:class:`OffsetMismatch` carries the current size). Chunks are gathered into ~1 MiB
        batches; each batch is written and hashed in worker threads while the next one is being
        received. If ``chunks`` fails part way, the batches written so far stay in the ingest
        (``ingest_size`` tells how far it got) and the error propagates.
        Raises :class:`IngestNotFound`, :class:`InvalidArgument` for a malformed id.
        """
        path = self._ingest_path(ingest_id)
        async with self._exclusive(ingest_id):
            fd = await self._io(_open_for_append, path, ingest_id, offset)
            running = self._running.get(ingest_id)
            if running is None or running.size != offset:
                # Only a digest fed from byte 0 is meaningful; otherwise commit re-hashes.
                running = _RunningDigest() if offset == 0 else None
                if running is None:
                    self._running.pop(ingest_id, None)
                else:
                    self._running[ingest_id] = running
            written = 0
            in_flight: list[asyncio.Future[None]] = []
            batch: list[bytes] = []
            batched = 0
            try:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= _BATCH_BYTES:
                        for hop in in_flight:
                            await _landed(hop)
                        in_flight = _store_batch(fd, batch, offset + written, running)
                        written += batched
                        batch, batched = [], 0
                if batch:
                    for hop in in_flight:
                        await _landed(hop)
                    in_flight = _store_batch(fd, batch, offset + written, running)
                    written += batched
                for hop in in_flight:
                    await _landed(hop)
            finally:
                await _settle(in_flight)
                os.close(fd)
            return offset + written

    async def ingest_size(self, ingest_id: str) -> int:
        """Current size of an ingest. Raises :class:`IngestNotFound`."""
        return await self._io(_ingest_size, self._ingest_path(ingest_id), ingest_id)

    async def commit(self, ingest_id: str, digest: str, *, size: int | None = None) -> int:
        """Verify the ingest against ``digest`` (and ``size``), fsync it, rename it to the blob
        path and fsync the directory; return the blob size.

        The sha256 fed during appends is used when it covers the whole file; otherwise (after a
        restart, for sha512) the file is re-hashed in a worker thread. On
        :class:`DigestMismatch` / :class:`SizeMismatch` the ingest is deleted. A blob that
        already exists is kept and the verified ingest dropped, so concurrent commits of the
        same content are safe. A malformed ``digest`` raises :class:`DigestInvalid` before
        anything is touched (the ingest survives). Raises :class:`IngestNotFound`.
        """
        path = self._ingest_path(ingest_id)
        algorithm, encoded, blob = self._blob_path(digest)
        async with self._exclusive(ingest_id):
            running = self._running.get(ingest_id) if algorithm == "sha256" else None
            try:
                return await self._io(
                    _commit,
                    path,
                    blob,
                    ingest_id=ingest_id,
                    digest=digest,
                    encoded=encoded,
                    expected_size=size,
                    running=running,
                )
            finally:
                # The ingest is gone (or, after an I/O failure, suspect): a later commit of the
                # same id must not trust this digest state.
                self._running.pop(ingest_id, None)

    async def abort(self, ingest_id: str) -> None:
        """Drop an ingest; idempotent. Deliberately lock-free so expiry is never held up by a
        stalled upload: an append still running writes into the unlinked file and is lost."""
        path = self._ingest_path(ingest_id)
        self._running.pop(ingest_id, None)
        await self._io(_unlink_if_present, path)

    async def ingests(self) -> list[tuple[str, float]]:
        """Every ingest id with its mtime. Includes the ``.put-*`` scratch files of interrupted
        :meth:`put` calls, so expiry cleans those up too."""
        return await self._io(_list_ingests, self._ingest_dir)

    async def put(self, data: bytes, digest: str) -> int:
        """Store a whole blob after verifying it (one worker-thread hop); return its size.
        Raises :class:`DigestInvalid`, :class:`DigestMismatch`."""
        _, _, blob = self._blob_path(digest)
        scratch = self._ingest_dir / f".put-{uuid.uuid4().hex}"
        return await self._io(_put, data, digest=digest, blob=blob, scratch=scratch)

    # -- readers --------------------------------------------------------------------------------
    async def stat(self, digest: str) -> int | None:
        """Size of a committed blob or ``None``. Raises :class:`DigestInvalid`."""
        _, _, blob = self._blob_path(digest)
        return await self._io(_size_or_none, blob)

    async def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """Stream bytes ``[start, end)`` in chunks of up to 1 MiB, reading 4 MiB per worker-thread
        hop and one such batch ahead.

        ``end`` past the size is clamped; ``start`` past it yields nothing. Errors surface on
        the first iteration: :class:`DigestInvalid`, :class:`InvalidArgument` for a bad range,
        :class:`BlobNotFound`. A blob deleted mid-read is still read to the end (the open file
        keeps it alive).
        """
        _, _, blob = self._blob_path(digest)
        validate_range(start, end)
        # First hop opens, sizes and reads the first batch; small blobs need no other hop.
        fd, stop, first = await self._io(_open_for_read, blob, digest, start, end)
        if fd < 0:
            for chunk in first:
                yield chunk
            return
        position = start + sum(len(chunk) for chunk in first)
        ahead: asyncio.Future[list[bytes]] | None = None
        try:
            batch = first
            while batch:
                ahead = _spawn(_pread_batch, fd, stop, position) if position < stop else None
                for chunk in batch:
                    yield chunk
                if ahead is None:
                    break
                batch = await _landed(ahead)
                ahead = None
                position += sum(len(chunk) for chunk in batch)
        finally:
            if ahead is not None:
                await _settle([ahead])
            os.close(fd)

    async def read_all(self, digest: str) -> bytes:
        """A whole blob in memory (meant for small ones: manifests, configs).
        Raises :class:`DigestInvalid`, :class:`BlobNotFound`."""
        _, _, blob = self._blob_path(digest)
        return await self._io(_read_whole, blob, digest)

    # -- admin ----------------------------------------------------------------------------------
    async def delete(self, digest: str) -> bool:
        """Remove a blob; ``False`` if it was not there. Raises :class:`DigestInvalid`."""
        _, _, blob = self._blob_path(digest)
        return await self._io(_unlink_if_present, blob)

    async def digests(self) -> list[str]:
        """Every committed digest, sorted. Stray files that are not blobs are ignored."""
        return await self._io(_list_digests, self._blob_dir)


# -- pipelining: one worker-thread hop in flight while the event loop moves the next chunk ---------


def _spawn(function: Callable[[*_Ts], _T], *args: *_Ts) -> asyncio.Future[_T]:
    # A bare executor future, not a task: cheaper, and it completes only when the thread does.
    return asyncio.get_running_loop().run_in_executor(None, function, *args)


def _store_batch(
    fd: int, batch: list[bytes], position: int, running: _RunningDigest | None
) -> list[asyncio.Future[None]]:
    """Start writing the chunks of ``batch`` at ``position`` (with ``writev``, not joined first:
    that would copy every byte once more; then handing them to the disk, see
    :func:`_start_writeback`) and feeding them to the running digest, in two worker threads at
    once: both release the GIL, so hashing no longer adds to the time a batch takes.

    ``running.size`` may run ahead of the file if the write fails; that mismatch is exactly
    what makes commit distrust the digest and re-hash.
    """
    hops = [_spawn(_write_chunks, fd, batch, position)]
    if running is not None:
        hops.append(_spawn(_feed, running, batch))
    return hops


async def _landed(hop: asyncio.Future[_T]) -> _T:
    """The result of a hop, with OS errors translated (errors of the caller's chunk source are
    left alone: they are not storage failures). Shielded, so that cancelling the caller never
    marks the hop done while its thread still runs; :func:`_settle` waits for it."""
    try:
        return await asyncio.shield(hop)
    except OSError as exc:
        raise _storage_failure(exc) from exc


async def _settle(hops: list[asyncio.Future[_T]]) -> None:
    """Wait for hops to finish even while being cancelled.

    A thread cannot be interrupted, and its file descriptor (and the ingest lock) must outlive
    it: closing the descriptor early could let the thread write into a reused one. A
    cancellation that arrives meanwhile is re-raised once the threads are done.
    """
    cancelled = False
    while not all(hop.done() for hop in hops):
        try:
            await asyncio.wait(hops)
        except asyncio.CancelledError:
            cancelled = True
    for hop in hops:
        if not hop.cancelled():
            hop.exception()  # mark as retrieved: the caller is already propagating its own error
    if cancelled:
        raise asyncio.CancelledError


# -- blocking work (runs in worker threads) ------------------------------------------------------


def _touch(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _open_for_append(path: Path, ingest_id: str, offset: int) -> int:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        raise IngestNotFound(f"ingest '{ingest_id}' does not exist") from None
    size = os.fstat(fd).st_size
    if size != offset:
        os.close(fd)
        raise OffsetMismatch(
            f"append at offset {offset} but ingest '{ingest_id}' holds {size} bytes", current_size=size
        )
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_chunks(fd: int, chunks: list[bytes], position: int) -> None:
    """Write every chunk, in order, with as few ``writev`` calls as the kernel allows (the file
    is opened for appending, at ``position``), then start writing them back to the disk."""
    pending = [memoryview(chunk) for chunk in chunks]
    while pending:
        written = os.writev(fd, pending[:_IOV_MAX])
        while pending and written >= len(pending[0]):
            written -= len(pending.pop(0))
        if written:
            pending[0] = pending[0][written:]
    if _start_writeback is not None:
        _start_writeback(fd, position, sum(len(chunk) for chunk in chunks))


def _writeback_starter() -> Callable[[int, int, int], None] | None:
    """Linux's ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which Python's ``os`` lacks: start
    writing a range of a file to the disk without waiting for it. Done for every batch of an
    upload (in its worker thread, while the next batch is being received), it leaves the fsync
    at commit little to flush: that fsync is on the request's critical path, and without this
    it would write the whole blob then (about 0.1 s per 256 MiB here). Durability still rests
    on that fsync alone. ``None`` where the call is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        # A failure only leaves the work to the fsync at commit, as without this call.
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

    return start


_SYNC_FILE_RANGE_WRITE = 2
_start_writeback = _writeback_starter()


def _feed(running: _RunningDigest, chunks: list[bytes]) -> None:
    for chunk in chunks:
        running.hasher.update(chunk)
        running.size += len(chunk)


def _ingest_size(path: Path, ingest_id: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise IngestNotFound(f"ingest '{ingest_id}' does not exist") from None


def _commit(
    path: Path,
    blob: Path,
    *,
    ingest_id: str,
    digest: str,
    encoded: str,
    expected_size: int | None,
    running: _RunningDigest | None,
) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise IngestNotFound(f"ingest '{ingest_id}' does not exist") from None
    try:
        size = os.fstat(fd).st_size
        if expected_size is not None and size != expected_size:
            _unlink_if_present(path)
            raise SizeMismatch(f"ingest '{ingest_id}' holds {size} bytes, expected {expected_size}")
        if running is not None and running.size == size:
            actual = running.hasher.hexdigest()
        else:
            with open(fd, "rb", closefd=False) as stream:
                actual = hashlib.file_digest(stream, digest.partition(":")[0]).hexdigest()
        if actual != encoded:
            _unlink_if_present(path)
            raise DigestMismatch(f"ingest '{ingest_id}' does not match digest {digest}")
        if blob.exists():
            _unlink_if_present(path)
            return size
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        _place(path, blob)
    except FileNotFoundError:
        # Aborted between verification and rename (abort does not take the lock).
        raise IngestNotFound(f"ingest '{ingest_id}' does not exist") from None
    return size


def _place(source: Path, blob: Path) -> None:
    """Rename a verified, fsynced file to its blob path and make the rename durable."""
    fan_out = blob.parent
    try:
        fan_out.mkdir()
        created = True
    except FileExistsError:
        created = False
    # Renaming over an existing blob is harmless: same digest, same bytes.
    os.rename(source, blob)
    _fsync_directory(fan_out)
    if created:
        _fsync_directory(fan_out.parent)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put(data: bytes, *, digest: str, blob: Path, scratch: Path) -> int:
    algorithm, _, encoded = digest.partition(":")
    if hashlib.new(algorithm, data).hexdigest() != encoded:
        raise DigestMismatch(f"content does not match digest {digest}")
    if blob.exists():
        return len(data)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _place(scratch, blob)
    except BaseException:
        _unlink_if_present(scratch)
        raise
    return len(data)


def _size_or_none(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _unlink_if_present(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _open_for_read(path: Path, digest: str, start: int, end: int | None) -> tuple[int, int, list[bytes]]:
    """Open a blob and read its first batch: ``(fd, stop, first)``; ``fd`` is -1 (already
    closed) when ``first`` is the whole range."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BlobNotFound(f"blob {digest} does not exist") from None
    try:
        size = os.fstat(fd).st_size
        stop = size if end is None else min(end, size)
        first = _pread_batch(fd, stop, start)
        if start + sum(len(chunk) for chunk in first) >= stop:
            os.close(fd)
            return -1, stop, first
    except BaseException:
        os.close(fd)
        raise
    return fd, stop, first


def _pread_batch(fd: int, stop: int, position: int) -> list[bytes]:
    """Up to ``_READ_BATCH`` bytes from ``position`` (never past ``stop``) as chunks of at most
    ``_READ_CHUNK``; fewer (or none) if the file ends early."""
    chunks: list[bytes] = []
    end = min(stop, position + _READ_BATCH)
    while position < end:
        chunk = os.pread(fd, min(end - position, _READ_CHUNK), position)
        if not chunk:
            break
        chunks.append(chunk)
        position += len(chunk)
    return chunks


def _read_whole(path: Path, digest: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BlobNotFound(f"blob {digest} does not exist") from None


def _list_ingests(directory: Path) -> list[tuple[str, float]]:
    found: list[tuple[str, float]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                found.append((entry.name, entry.stat().st_mtime))
            except FileNotFoundError:
                continue  # committed or aborted while we listed
    return sorted(found)


def _list_digests(blob_dir: Path) -> list[str]:
    found: list[str] = []
    for algorithm in SUPPORTED_ALGORITHMS:
        for fan_out in sorted((blob_dir / algorithm).glob("??")):
            for path in fan_out.iterdir():
                digest = f"{algorithm}:{path.name}"
                with contextlib.suppress(InvalidArgument):
                    parse_digest(digest)
                    if path.name.startswith(fan_out.name) and path.is_file():
                        found.append(digest)
    return sorted(found)
