"""An in-memory blob backend: a fake for tests that passes the same contract suite as the
filesystem backend (``tests/contract/test_blob_store.py``). Nothing survives the process."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from moorage.store.blobs import (
    BlobNotFound,
    DigestMismatch,
    IngestNotFound,
    OffsetMismatch,
    SizeMismatch,
    parse_digest,
)

# The id and range rules are the filesystem backend's, imported rather than copied so that the
# fake can never accept what the real store rejects.
from moorage.store.blobs.filesystem import validate_ingest_id, validate_range

_READ_CHUNK = 1 << 20


@dataclass
class _Ingest:
    data: bytearray = field(default_factory=bytearray)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    modified: float = field(default_factory=time.time)


class MemoryBlobStore:
    """A :class:`~moorage.store.blobs.BlobStore` held in dictionaries.

    Same contract and errors as :class:`~moorage.store.blobs.filesystem.FilesystemBlobStore`;
    appends to one ingest are serialized by a lock that lives and dies with the ingest.
    """

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._ingests: dict[str, _Ingest] = {}

    def _ingest(self, ingest_id: str) -> _Ingest:
        validate_ingest_id(ingest_id)
        ingest = self._ingests.get(ingest_id)
        if ingest is None:
            raise IngestNotFound(f"ingest '{ingest_id}' does not exist")
        return ingest

    # -- writers --------------------------------------------------------------------------------
    async def start_ingest(self, ingest_id: str) -> None:
        """Create an empty ingest; an existing one is left as it is."""
        validate_ingest_id(ingest_id)
        self._ingests.setdefault(ingest_id, _Ingest())

    async def append(self, ingest_id: str, chunks: AsyncIterator[bytes], *, offset: int) -> int:
        """Append at ``offset`` (checked under the ingest's lock); return the new size.
        Raises :class:`IngestNotFound`, :class:`OffsetMismatch`."""
        ingest = self._ingest(ingest_id)
        async with ingest.lock:
            if self._ingests.get(ingest_id) is not ingest:
                raise IngestNotFound(f"ingest '{ingest_id}' does not exist")
            if offset != len(ingest.data):
                raise OffsetMismatch(
                    f"append at offset {offset} but ingest '{ingest_id}' holds {len(ingest.data)} bytes",
                    current_size=len(ingest.data),
                )
            async for chunk in chunks:
                ingest.data += chunk
                ingest.modified = time.time()
            return len(ingest.data)

    async def ingest_size(self, ingest_id: str) -> int:
        """Current size of an ingest. Raises :class:`IngestNotFound`."""
        return len(self._ingest(ingest_id).data)

    async def commit(self, ingest_id: str, digest: str, *, size: int | None = None) -> int:
        """Verify and store the ingest, which is gone afterwards whatever the outcome.
        Raises :class:`DigestInvalid` (ingest kept), :class:`IngestNotFound`,
        :class:`SizeMismatch`, :class:`DigestMismatch`."""
        validate_ingest_id(ingest_id)
        algorithm, encoded = parse_digest(digest)
        ingest = self._ingest(ingest_id)
        async with ingest.lock:
            if self._ingests.get(ingest_id) is not ingest:
                raise IngestNotFound(f"ingest '{ingest_id}' does not exist")
            del self._ingests[ingest_id]
            data = bytes(ingest.data)
        if size is not None and len(data) != size:
            raise SizeMismatch(f"ingest '{ingest_id}' holds {len(data)} bytes, expected {size}")
        if hashlib.new(algorithm, data).hexdigest() != encoded:
            raise DigestMismatch(f"ingest '{ingest_id}' does not match digest {digest}")
        self._blobs.setdefault(digest, data)
        return len(data)

    async def abort(self, ingest_id: str) -> None:
        """Drop an ingest; idempotent."""
        validate_ingest_id(ingest_id)
        self._ingests.pop(ingest_id, None)

    async def ingests(self) -> list[tuple[str, float]]:
        """Every ingest id with its last-modified time."""
        return sorted((ingest_id, ingest.modified) for ingest_id, ingest in self._ingests.items())

    async def put(self, data: bytes, digest: str) -> int:
        """Store a whole blob after verifying it. Raises :class:`DigestInvalid`,
        :class:`DigestMismatch`."""
        algorithm, encoded = parse_digest(digest)
        if hashlib.new(algorithm, data).hexdigest() != encoded:
            raise DigestMismatch(f"content does not match digest {digest}")
        self._blobs.setdefault(digest, bytes(data))
        return len(data)

    # -- readers --------------------------------------------------------------------------------
    async def stat(self, digest: str) -> int | None:
        """Size of a committed blob or ``None``. Raises :class:`DigestInvalid`."""
        parse_digest(digest)
        blob = self._blobs.get(digest)
        return None if blob is None else len(blob)

    async def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """Stream ``[start, end)`` in chunks of up to 1 MiB; errors surface on the first
        iteration, as in the filesystem backend."""
        parse_digest(digest)
        validate_range(start, end)
        blob = self._blobs.get(digest)
        if blob is None:
            raise BlobNotFound(f"blob {digest} does not exist")
        stop = len(blob) if end is None else min(end, len(blob))
        for position in range(start, stop, _READ_CHUNK):
            yield blob[position : min(position + _READ_CHUNK, stop)]

    async def read_all(self, digest: str) -> bytes:
        """A whole blob. Raises :class:`DigestInvalid`, :class:`BlobNotFound`."""
        parse_digest(digest)
        blob = self._blobs.get(digest)
        if blob is None:
            raise BlobNotFound(f"blob {digest} does not exist")
        return blob

    # -- admin ----------------------------------------------------------------------------------
    async def delete(self, digest: str) -> bool:
        """Remove a blob; ``False`` if it was not there. Raises :class:`DigestInvalid`."""
        parse_digest(digest)
        return self._blobs.pop(digest, None) is not None

    async def digests(self) -> list[str]:
        """Every committed digest, sorted."""
        return sorted(self._blobs)
