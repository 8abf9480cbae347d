"""Content-addressed blob storage.

A blob is an immutable byte string named by its digest (``sha256:<hex>`` or ``sha512:<hex>``).
Blobs are written through *ingests*: resumable, append-only temporary files identified by an
opaque id (a registry upload session, a puller's download). Committing an ingest verifies the
bytes against the expected digest, makes them durable (fsync) and atomically renames them into
place, so a crash never exposes a partial or corrupt blob and a reader never sees one either.

Roles, as in containerd: readers (``stat``, ``read``), writers (the ingest methods) and the admin
(``delete``, ``digests``). Backends: ``filesystem`` (default) and ``memory`` (a fake that passes
the same contract suite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from moorage.core.errors import InvalidArgument, NotFound

SUPPORTED_ALGORITHMS = ("sha256", "sha512")


class DigestInvalid(InvalidArgument):
    """The digest string is malformed or uses an unsupported algorithm."""

    default_code = "DIGEST_INVALID"


class DigestMismatch(InvalidArgument):
    """The ingested bytes do not hash to the expected digest (nothing was committed)."""

    default_code = "DIGEST_INVALID"


class SizeMismatch(InvalidArgument):
    """The ingested byte count differs from the size the caller declared."""

    default_code = "SIZE_INVALID"


class IngestNotFound(NotFound):
    default_code = "BLOB_UPLOAD_UNKNOWN"


class OffsetMismatch(InvalidArgument):
    """An append did not start at the ingest's current size (chunks out of order)."""

    default_code = "BLOB_UPLOAD_INVALID"

    def __init__(self, message: str, *, current_size: int) -> None:
        super().__init__(message)
        self.current_size = current_size


class BlobNotFound(NotFound):
    default_code = "BLOB_UNKNOWN"


class BlobStore(Protocol):
    """The contract every blob backend implements (see ``tests/contract/test_blob_store.py``)."""

    # -- writers --------------------------------------------------------------------------------
    async def start_ingest(self, ingest_id: str) -> None:
        """Create an empty ingest. Idempotent for an id that already exists."""

    async def append(self, ingest_id: str, chunks: AsyncIterator[bytes], *, offset: int) -> int:
        """Append the chunks at ``offset`` (which must equal the current size, else
        :class:`OffsetMismatch` and nothing is written); return the new size. Memory stays flat:
        chunks are streamed to storage as they arrive."""

    async def ingest_size(self, ingest_id: str) -> int:
        """Current size of an ingest; :class:`IngestNotFound` if there is none."""

    async def commit(self, ingest_id: str, digest: str, *, size: int | None = None) -> int:
        """Verify the ingest against ``digest`` (and ``size`` when given), make it durable and
        move it into place; return the blob size. The ingest is gone afterwards whatever the
        outcome of verification (:class:`DigestMismatch`, :class:`SizeMismatch`). If the blob
        already exists the ingest is verified and dropped."""

    async def abort(self, ingest_id: str) -> None:
        """Drop an ingest. Idempotent."""

    async def ingests(self) -> list[tuple[str, float]]:
        """Every ingest id with its last-modified time (Unix seconds), for expiry."""

    async def put(self, data: bytes, digest: str) -> int:
        """Store a small blob given whole (manifests), verified like :meth:`commit`."""

    # -- readers --------------------------------------------------------------------------------
    async def stat(self, digest: str) -> int | None:
        """The size of a committed blob, or ``None``."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of a committed blob (``end=None``: to the end).
        :class:`BlobNotFound` when the blob does not exist."""

    async def read_all(self, digest: str) -> bytes:
        """A whole (small) blob."""

    # -- admin ----------------------------------------------------------------------------------
    async def delete(self, digest: str) -> bool:
        """Remove a blob; ``False`` if it was not there."""

    async def digests(self) -> list[str]:
        """Every committed digest (for garbage collection)."""


def parse_digest(digest: str) -> tuple[str, str]:
    """Split and validate ``algorithm:hex``; :class:`DigestInvalid` when malformed."""
    algorithm, sep, encoded = digest.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if (
        not sep
        or algorithm not in lengths
        or len(encoded) != lengths[algorithm]
        or any(c not in "0123456789abcdef" for c in encoded)
    ):
        raise DigestInvalid(f"invalid digest '{digest[:200]}'")
    return algorithm, encoded


def open_blob_store(name: str, root: Path) -> BlobStore:
    """The blob backend called ``name`` (``filesystem`` under ``root``, or ``memory``, which
    ignores ``root``). Backends are imported only when picked. Raises :class:`InvalidArgument`
    (code ``BlobStoreUnknown``) for any other name."""
    if name == "filesystem":
        from moorage.store.blobs.filesystem import FilesystemBlobStore  # noqa: PLC0415

        return FilesystemBlobStore(root)
    if name == "memory":
        from moorage.store.blobs.memory import MemoryBlobStore  # noqa: PLC0415

        return MemoryBlobStore()
    raise InvalidArgument(
        f"unknown blob store backend '{name}' (known: filesystem, memory)", code="BlobStoreUnknown"
    )
