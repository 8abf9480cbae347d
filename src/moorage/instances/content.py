"""Leases on pulled content, and garbage collection of the puller's blob store.

A *lease* is a named set of digests that must stay in the store: a container group holds one
for the images its containers run from, and every pull holds one while it is in flight (the
puller adds a digest to the lease *before* it checks whether the blob is already present, so a
collection can never remove a blob between that check and the moment it is used). A lease may
expire: the temporary lease of a pull that crashed does not pin its blobs forever.

Leases persist as one JSON file per lease under a directory, written to a temporary file,
fsynced and renamed into place, so a crash leaves either the old or the new lease.

:meth:`Leases.collect` deletes every committed blob that no live lease holds. It must only be
given the puller's *own* blob store: it would delete anything else kept in the same store.
Lease changes and collections are serialised by an ``asyncio`` lock within the process and by
an exclusive ``flock`` on ``<dir>/.lock`` across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from moorage.core.errors import InvalidArgument, NotFound, Unavailable
from moorage.core.log import get_logger
from moorage.store.blobs import BlobStore, parse_digest

log = get_logger("instances.content")

_LEASE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SUFFIX = ".json"


class LeaseNotFound(NotFound):
    default_code = "LeaseNotFound"


class LeaseUnreadable(Unavailable):
    """A lease file exists but cannot be parsed; collections refuse to run until it is fixed."""

    default_code = "LeaseUnreadable"


def validate_lease_id(lease_id: str) -> None:
    """1..128 characters from ``[A-Za-z0-9._-]``, not starting with ``.``.
    Raises :class:`InvalidArgument` (code ``InvalidLeaseId``)."""
    if not _LEASE_ID.fullmatch(lease_id) or lease_id.startswith("."):
        raise InvalidArgument(f"invalid lease id '{lease_id[:200]}'", code="InvalidLeaseId")


@dataclass(frozen=True)
class Lease:
    id: str
    digests: frozenset[str]
    created_at: float
    expires_at: float | None = None  # Unix seconds; None: until released

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Leases:
    """Named sets of digests that garbage collection keeps, persisted under ``root``."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._root = root
        self._clock = clock
        self._lock = asyncio.Lock()
        root.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        async with self._lock:
            fd = await asyncio.to_thread(_lock_directory, self._root)
            try:
                yield
            finally:
                os.close(fd)  # closing the descriptor drops the flock

    def _path(self, lease_id: str) -> Path:
        validate_lease_id(lease_id)
        return self._root / f"{lease_id}{_SUFFIX}"

    async def acquire(
        self, lease_id: str, digests: Iterable[str] = (), *, ttl_s: float | None = None
    ) -> Lease:
        """Create the lease (or extend an existing one) with ``digests``. ``ttl_s`` sets (or,
        for an existing lease, resets) its expiry; ``None`` keeps an existing expiry and makes a
        new lease permanent. Raises :class:`InvalidArgument` for a bad id or digest."""
        wanted = _checked(digests)
        path = self._path(lease_id)
        async with self._exclusive():
            now = self._clock()
            current = await asyncio.to_thread(_read_lease, path)
            expires = now + ttl_s if ttl_s is not None else (current.expires_at if current else None)
            lease = Lease(
                lease_id,
                (current.digests if current else frozenset()) | wanted,
                current.created_at if current else now,
                expires,
            )
            await asyncio.to_thread(_write_lease, path, lease)
            return lease

    async def add(self, lease_id: str, digests: Iterable[str]) -> Lease:
        """Add ``digests`` to an existing lease. Raises :class:`LeaseNotFound`."""
        wanted = _checked(digests)
        path = self._path(lease_id)
        async with self._exclusive():
            current = await asyncio.to_thread(_read_lease, path)
            if current is None:
                raise LeaseNotFound(f"lease '{lease_id}' does not exist")
            lease = Lease(lease_id, current.digests | wanted, current.created_at, current.expires_at)
            if lease != current:
                await asyncio.to_thread(_write_lease, path, lease)
            return lease

    async def release(self, lease_id: str) -> bool:
        """Delete the lease; ``False`` if there was none. Its blobs go at the next collection
        unless another lease holds them."""
        path = self._path(lease_id)
        async with self._exclusive():
            return await asyncio.to_thread(_unlink, path)

    async def get(self, lease_id: str) -> Lease | None:
        path = self._path(lease_id)
        return await asyncio.to_thread(_read_lease, path)

    async def leases(self) -> list[Lease]:
        """Every lease on disk, expired ones included, sorted by id."""
        return await asyncio.to_thread(_read_all, self._root)

    async def held(self) -> set[str]:
        """Digests held by at least one live (unexpired) lease."""
        now = self._clock()
        return {d for lease in await self.leases() if not lease.expired(now) for d in lease.digests}

    async def collect(self, blobs: BlobStore) -> list[str]:
        """Remove expired leases, then every blob of ``blobs`` that no live lease holds; return
        the deleted digests. ``blobs`` must be the puller's own store (see module docstring)."""
        async with self._exclusive():
            now = self._clock()
            keep: set[str] = set()
            for lease in await asyncio.to_thread(_read_all, self._root):
                if lease.expired(now):
                    await asyncio.to_thread(_unlink, self._root / f"{lease.id}{_SUFFIX}")
                    log.info("lease expired", lease=lease.id)
                    continue
                keep |= lease.digests
            deleted = [d for d in await blobs.digests() if d not in keep and await blobs.delete(d)]
        if deleted:
            log.info("collected unleased blobs", count=len(deleted))
        return deleted


def _checked(digests: Iterable[str]) -> frozenset[str]:
    found = frozenset(digests)
    for digest in found:
        parse_digest(digest)
    return found


# -- blocking helpers (worker threads) -------------------------------------------------------------


def _lock_directory(root: Path) -> int:
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_lease(path: Path) -> Lease | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LeaseUnreadable(f"lease file '{path.name}' cannot be read") from exc
    try:
        data = json.loads(text)
        expires = data.get("expiresAt")
        return Lease(
            str(data["id"]),
            frozenset(str(d) for d in data["digests"]),
            float(data["createdAt"]),
            float(expires) if expires is not None else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # Ignoring the file would let a collection delete what it protects: refuse instead.
        raise LeaseUnreadable(f"lease file '{path.name}' cannot be read; fix or remove it") from exc


def _write_lease(path: Path, lease: Lease) -> None:
    body = json.dumps(
        {
            "id": lease.id,
            "digests": sorted(lease.digests),
            "createdAt": lease.created_at,
            "expiresAt": lease.expires_at,
        },
        indent=1,
    ).encode()
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(scratch, path)
    except BaseException:
        _unlink(scratch)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _read_all(root: Path) -> list[Lease]:
    found: list[Lease] = []
    for path in sorted(root.glob(f"*{_SUFFIX}")):
        if path.name.startswith("."):
            continue
        lease = _read_lease(path)
        if lease is not None:
            found.append(lease)
    return found
