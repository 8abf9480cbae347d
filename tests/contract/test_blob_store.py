"""The BlobStore contract, run against every backend; then what only the filesystem promises
(layout, crash safety, flat memory)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
import tracemalloc
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from moorage.core.errors import InvalidArgument, Unavailable
from moorage.store.blobs import (
    BlobNotFound,
    BlobStore,
    DigestInvalid,
    DigestMismatch,
    IngestNotFound,
    OffsetMismatch,
    SizeMismatch,
    open_blob_store,
)
from moorage.store.blobs.filesystem import FilesystemBlobStore

MiB = 1 << 20


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def sha512(data: bytes) -> str:
    return f"sha512:{hashlib.sha512(data).hexdigest()}"


async def stream(*chunks: bytes, pause: bool = False) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if pause:
            await asyncio.sleep(0)
        yield chunk


async def ingest(store: BlobStore, ingest_id: str, data: bytes) -> None:
    await store.start_ingest(ingest_id)
    await store.append(ingest_id, stream(data), offset=0)


async def read(store: BlobStore, digest: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(digest, start, end)])


@pytest.fixture(params=["filesystem", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return open_blob_store(request.param, tmp_path / "store")


# -- writers ----------------------------------------------------------------------------------------


async def test_ingest_append_commit_round_trip(store: BlobStore) -> None:
    await ingest(store, "up-1", b"hello world")
    assert await store.commit("up-1", sha256(b"hello world")) == 11
    assert await read(store, sha256(b"hello world")) == b"hello world"


async def test_committed_ingest_is_gone(store: BlobStore) -> None:
    await ingest(store, "up-1", b"data")
    await store.commit("up-1", sha256(b"data"))
    with pytest.raises(IngestNotFound):
        await store.ingest_size("up-1")


async def test_chunked_appends_concatenate(store: BlobStore) -> None:
    await store.start_ingest("up-1")
    size = await store.append("up-1", stream(b"ab", b"", b"cd"), offset=0)
    size = await store.append("up-1", stream(b"ef"), offset=size)
    assert size == 6
    assert await store.ingest_size("up-1") == 6
    assert await store.commit("up-1", sha256(b"abcdef")) == 6
    assert await read(store, sha256(b"abcdef")) == b"abcdef"


async def test_append_of_many_batches_round_trips(store: BlobStore) -> None:
    chunks = [bytes([i]) * (300 * 1024 + i) for i in range(12)]  # ~3.6 MiB, odd sizes
    data = b"".join(chunks)
    await store.start_ingest("up-1")
    assert await store.append("up-1", stream(*chunks), offset=0) == len(data)
    await store.commit("up-1", sha256(data), size=len(data))
    assert await read(store, sha256(data)) == data


async def test_append_of_nothing_keeps_size(store: BlobStore) -> None:
    await ingest(store, "up-1", b"abc")
    assert await store.append("up-1", stream(), offset=3) == 3


async def test_start_ingest_is_idempotent(store: BlobStore) -> None:
    await ingest(store, "up-1", b"abc")
    await store.start_ingest("up-1")
    assert await store.ingest_size("up-1") == 3


async def test_append_to_missing_ingest_fails(store: BlobStore) -> None:
    with pytest.raises(IngestNotFound):
        await store.append("nope", stream(b"x"), offset=0)


async def test_ingest_size_of_missing_ingest_fails(store: BlobStore) -> None:
    with pytest.raises(IngestNotFound):
        await store.ingest_size("nope")


async def test_offset_mismatch_writes_nothing_and_reports_size(store: BlobStore) -> None:
    await ingest(store, "up-1", b"abc")
    with pytest.raises(OffsetMismatch) as caught:
        await store.append("up-1", stream(b"zzz"), offset=1)
    assert caught.value.current_size == 3
    assert caught.value.code == "BLOB_UPLOAD_INVALID"
    assert await store.ingest_size("up-1") == 3


async def test_concurrent_appends_at_same_offset_are_serialized(store: BlobStore) -> None:
    await store.start_ingest("up-1")
    first = store.append("up-1", stream(b"a" * 10, b"a" * 10, pause=True), offset=0)
    second = store.append("up-1", stream(b"b" * 5, b"b" * 5, pause=True), offset=0)
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert results[0] == 20
    assert isinstance(results[1], OffsetMismatch)
    assert results[1].current_size == 20
    assert await store.commit("up-1", sha256(b"a" * 20)) == 20


async def test_failing_chunk_source_propagates_and_keeps_ingest(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise ConnectionResetError("client went away")

    await store.start_ingest("up-1")
    with pytest.raises(ConnectionResetError):
        await store.append("up-1", broken(), offset=0)
    size = await store.ingest_size("up-1")
    assert size in {0, 10}  # a backend may or may not keep the unflushed prefix
    assert await store.append("up-1", stream(b"y"), offset=size) == size + 1


async def test_cancelled_append_leaves_a_resumable_prefix(store: BlobStore) -> None:
    data = os.urandom(5 * MiB)
    sent = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for start in range(0, 3 * MiB, 256 * 1024):
            yield data[start : start + 256 * 1024]
        sent.set()
        await asyncio.Event().wait()

    await store.start_ingest("up-1")
    task = asyncio.create_task(store.append("up-1", stalls(), offset=0))
    await sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    size = await store.ingest_size("up-1")
    assert size <= 3 * MiB
    await store.append("up-1", stream(data[size:]), offset=size)
    assert await store.commit("up-1", sha256(data)) == len(data)


async def test_digest_mismatch_commits_nothing_and_drops_ingest(store: BlobStore) -> None:
    await ingest(store, "up-1", b"actual")
    with pytest.raises(DigestMismatch) as caught:
        await store.commit("up-1", sha256(b"expected"))
    assert caught.value.code == "DIGEST_INVALID"
    assert await store.stat(sha256(b"expected")) is None
    assert await store.stat(sha256(b"actual")) is None
    with pytest.raises(IngestNotFound):
        await store.ingest_size("up-1")


async def test_size_mismatch_commits_nothing_and_drops_ingest(store: BlobStore) -> None:
    await ingest(store, "up-1", b"actual")
    with pytest.raises(SizeMismatch) as caught:
        await store.commit("up-1", sha256(b"actual"), size=5)
    assert caught.value.code == "SIZE_INVALID"
    assert await store.stat(sha256(b"actual")) is None
    with pytest.raises(IngestNotFound):
        await store.ingest_size("up-1")


async def test_commit_with_matching_size_succeeds(store: BlobStore) -> None:
    await ingest(store, "up-1", b"actual")
    assert await store.commit("up-1", sha256(b"actual"), size=6) == 6


async def test_commit_of_missing_ingest_fails(store: BlobStore) -> None:
    with pytest.raises(IngestNotFound):
        await store.commit("nope", sha256(b""))


async def test_commit_with_malformed_digest_keeps_ingest(store: BlobStore) -> None:
    await ingest(store, "up-1", b"abc")
    with pytest.raises(DigestInvalid):
        await store.commit("up-1", "sha256:abc")
    assert await store.ingest_size("up-1") == 3


async def test_sha512_commit(store: BlobStore) -> None:
    await ingest(store, "up-1", b"five hundred and twelve")
    assert await store.commit("up-1", sha512(b"five hundred and twelve")) == 23
    assert await store.read_all(sha512(b"five hundred and twelve")) == b"five hundred and twelve"


async def test_sha512_mismatch_is_detected(store: BlobStore) -> None:
    await ingest(store, "up-1", b"abc")
    with pytest.raises(DigestMismatch):
        await store.commit("up-1", sha512(b"abd"))


async def test_empty_blob_round_trips(store: BlobStore) -> None:
    await store.start_ingest("up-1")
    assert await store.commit("up-1", sha256(b"")) == 0
    assert await store.stat(sha256(b"")) == 0
    assert await read(store, sha256(b"")) == b""


async def test_duplicate_commit_keeps_blob(store: BlobStore) -> None:
    await ingest(store, "up-1", b"same")
    await ingest(store, "up-2", b"same")
    assert await store.commit("up-1", sha256(b"same")) == 4
    assert await store.commit("up-2", sha256(b"same")) == 4
    assert await store.read_all(sha256(b"same")) == b"same"
    assert await store.ingests() == []


async def test_concurrent_commits_of_same_content_both_succeed(store: BlobStore) -> None:
    data = os.urandom(3 * MiB)
    for ingest_id in ("up-1", "up-2", "up-3"):
        await ingest(store, ingest_id, data)
    sizes = await asyncio.gather(*(store.commit(i, sha256(data)) for i in ("up-1", "up-2", "up-3")))
    assert sizes == [len(data)] * 3
    assert await read(store, sha256(data)) == data


async def test_duplicate_commit_with_wrong_content_is_rejected(store: BlobStore) -> None:
    await store.put(b"good", sha256(b"good"))
    await ingest(store, "up-1", b"evil")
    with pytest.raises(DigestMismatch):
        await store.commit("up-1", sha256(b"good"))
    assert await store.read_all(sha256(b"good")) == b"good"


async def test_abort_drops_ingest(store: BlobStore) -> None:
    await ingest(store, "up-1", b"abc")
    await store.abort("up-1")
    with pytest.raises(IngestNotFound):
        await store.ingest_size("up-1")


async def test_abort_is_idempotent(store: BlobStore) -> None:
    await store.start_ingest("up-1")
    await store.abort("up-1")
    await store.abort("up-1")
    await store.abort("never-existed")


async def test_ingests_lists_ids_with_mtime(store: BlobStore) -> None:
    before = time.time() - 5  # generous: file systems may round mtimes
    await store.start_ingest("up-b")
    await ingest(store, "up-a", b"x")
    listed = await store.ingests()
    assert [ingest_id for ingest_id, _ in listed] == ["up-a", "up-b"]
    assert all(mtime >= before for _, mtime in listed)


async def test_put_stores_blob(store: BlobStore) -> None:
    body = b'{"schemaVersion":2}'
    assert await store.put(body, sha256(body)) == len(body)
    assert await store.read_all(sha256(body)) == body


async def test_put_is_idempotent(store: BlobStore) -> None:
    await store.put(b"x", sha256(b"x"))
    assert await store.put(b"x", sha256(b"x")) == 1
    assert await store.digests() == [sha256(b"x")]


async def test_put_with_wrong_digest_stores_nothing(store: BlobStore) -> None:
    with pytest.raises(DigestMismatch):
        await store.put(b"x", sha256(b"y"))
    assert await store.digests() == []
    assert await store.ingests() == []


async def test_put_sha512(store: BlobStore) -> None:
    assert await store.put(b"x", sha512(b"x")) == 1
    assert await store.stat(sha512(b"x")) == 1


# -- readers ----------------------------------------------------------------------------------------


async def test_stat_of_missing_blob_is_none(store: BlobStore) -> None:
    assert await store.stat(sha256(b"missing")) is None


async def test_read_of_missing_blob_fails(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as caught:
        await read(store, sha256(b"missing"))
    assert caught.value.code == "BLOB_UNKNOWN"


async def test_read_all_of_missing_blob_fails(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.read_all(sha256(b"missing"))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, b"0123456789"),
        (3, 7, b"3456"),
        (5, None, b"56789"),
        (0, 0, b""),
        (4, 4, b""),
        (10, None, b""),
        (12, None, b""),
        (8, 100, b"89"),
    ],
)
async def test_read_range(store: BlobStore, start: int, end: int | None, expected: bytes) -> None:
    await store.put(b"0123456789", sha256(b"0123456789"))
    assert await read(store, sha256(b"0123456789"), start, end) == expected


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
async def test_read_rejects_invalid_range(store: BlobStore, start: int, end: int | None) -> None:
    await store.put(b"0123456789", sha256(b"0123456789"))
    with pytest.raises(InvalidArgument) as caught:
        await read(store, sha256(b"0123456789"), start, end)
    assert caught.value.code == "RANGE_INVALID"


async def test_read_streams_in_bounded_chunks(store: BlobStore) -> None:
    data = os.urandom(3 * MiB + 12345)
    await store.put(data, sha256(data))
    chunks = [chunk async for chunk in store.read(sha256(data))]
    assert b"".join(chunks) == data
    assert len(chunks) >= 4
    assert max(len(chunk) for chunk in chunks) <= MiB


async def test_read_range_across_chunk_boundaries(store: BlobStore) -> None:
    data = os.urandom(3 * MiB)
    await store.put(data, sha256(data))
    assert await read(store, sha256(data), MiB - 7, 2 * MiB + 9) == data[MiB - 7 : 2 * MiB + 9]


async def test_read_can_stop_early(store: BlobStore) -> None:
    data = os.urandom(3 * MiB)
    await store.put(data, sha256(data))
    reader = store.read(sha256(data))
    assert isinstance(reader, AsyncGenerator)  # closable, so a consumer can release it early
    async with aclosing(reader) as chunks:
        async for chunk in chunks:
            assert chunk == data[: len(chunk)]
            break
    assert await store.stat(sha256(data)) == len(data)


# -- admin ------------------------------------------------------------------------------------------


async def test_delete_removes_blob(store: BlobStore) -> None:
    await store.put(b"x", sha256(b"x"))
    assert await store.delete(sha256(b"x")) is True
    assert await store.stat(sha256(b"x")) is None
    with pytest.raises(BlobNotFound):
        await store.read_all(sha256(b"x"))


async def test_delete_of_missing_blob_returns_false(store: BlobStore) -> None:
    assert await store.delete(sha256(b"x")) is False


async def test_digests_lists_committed_blobs(store: BlobStore) -> None:
    await store.put(b"a", sha256(b"a"))
    await store.put(b"b", sha512(b"b"))
    await ingest(store, "up-1", b"c")
    assert await store.digests() == sorted([sha256(b"a"), sha512(b"b")])


# -- validation -------------------------------------------------------------------------------------

INVALID_DIGESTS = [
    "",
    "sha256",
    "sha256:",
    "sha256:abc",
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "md5:" + "0" * 32,
    "sha512:" + "0" * 64,
    "sha256:../../" + "0" * 58,
]


@pytest.mark.parametrize("digest", INVALID_DIGESTS)
async def test_stat_rejects_invalid_digest(store: BlobStore, digest: str) -> None:
    with pytest.raises(DigestInvalid):
        await store.stat(digest)


@pytest.mark.parametrize("digest", INVALID_DIGESTS)
async def test_read_rejects_invalid_digest(store: BlobStore, digest: str) -> None:
    with pytest.raises(DigestInvalid):
        await read(store, digest)


@pytest.mark.parametrize("digest", INVALID_DIGESTS)
async def test_put_rejects_invalid_digest(store: BlobStore, digest: str) -> None:
    with pytest.raises(DigestInvalid):
        await store.put(b"x", digest)


@pytest.mark.parametrize("digest", INVALID_DIGESTS)
async def test_delete_rejects_invalid_digest(store: BlobStore, digest: str) -> None:
    with pytest.raises(DigestInvalid):
        await store.delete(digest)


INVALID_INGEST_IDS = ["", ".", "..", "../escape", "a/b", "a\\b", "a\x00b", "with space", "é", "x" * 129]


@pytest.mark.parametrize("ingest_id", INVALID_INGEST_IDS)
async def test_start_ingest_rejects_invalid_id(store: BlobStore, ingest_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await store.start_ingest(ingest_id)
    assert caught.value.code == "BLOB_UPLOAD_INVALID"


INGEST_METHODS: dict[str, Callable[[BlobStore, str], Awaitable[object]]] = {
    "append": lambda store, ingest_id: store.append(ingest_id, stream(b"x"), offset=0),
    "ingest_size": lambda store, ingest_id: store.ingest_size(ingest_id),
    "commit": lambda store, ingest_id: store.commit(ingest_id, sha256(b"x")),
    "abort": lambda store, ingest_id: store.abort(ingest_id),
}


@pytest.mark.parametrize("method", sorted(INGEST_METHODS))
@pytest.mark.parametrize("ingest_id", ["..", "../escape"])
async def test_ingest_methods_reject_invalid_id(store: BlobStore, method: str, ingest_id: str) -> None:
    with pytest.raises(InvalidArgument):
        await INGEST_METHODS[method](store, ingest_id)


@pytest.mark.parametrize(
    "ingest_id", ["a", "A-z_0.9", "...", "x" * 128, "0b2c6f0e-7d1c-4a8e-9f3e-2c1d0a9b8c7d"]
)
async def test_valid_ingest_ids_are_accepted(store: BlobStore, ingest_id: str) -> None:
    await store.start_ingest(ingest_id)
    assert await store.ingest_size(ingest_id) == 0


async def test_unknown_backend_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        open_blob_store("floppy", tmp_path)


# -- filesystem backend only ------------------------------------------------------------------------


def files_under(path: Path) -> list[Path]:
    return sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())


async def test_filesystem_layout(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await ingest(store, "up-1", b"abc")
    assert files_under(tmp_path) == [Path("ingest/up-1")]
    await store.commit("up-1", sha256(b"abc"))
    hex_digest = hashlib.sha256(b"abc").hexdigest()
    assert files_under(tmp_path) == [Path("blobs/sha256") / hex_digest[:2] / hex_digest]


async def test_filesystem_commit_after_restart_rehashes(tmp_path: Path) -> None:
    await ingest(FilesystemBlobStore(tmp_path), "up-1", b"first half, ")
    restarted = FilesystemBlobStore(tmp_path)
    await restarted.append("up-1", stream(b"second half"), offset=12)
    assert await restarted.commit("up-1", sha256(b"first half, second half")) == 23


async def test_filesystem_restart_detects_tampered_ingest(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await ingest(store, "up-1", b"abc")
    (tmp_path / "ingest" / "up-1").write_bytes(b"abd")  # same size: only a re-hash can tell
    with pytest.raises(DigestMismatch):
        await FilesystemBlobStore(tmp_path).commit("up-1", sha256(b"abc"))


async def test_filesystem_digests_ignore_stray_files(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    await store.put(b"a", sha256(b"a"))
    (tmp_path / "blobs" / "sha256" / "zz").mkdir()
    (tmp_path / "blobs" / "sha256" / "zz" / "junk").write_bytes(b"")
    (tmp_path / "blobs" / "sha256" / "00").mkdir(exist_ok=True)
    (tmp_path / "blobs" / "sha256" / "00" / ("11" + "0" * 62)).write_bytes(b"")  # wrong fan-out
    assert await store.digests() == [sha256(b"a")]


async def test_filesystem_read_closes_file_when_stopped_early(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = os.urandom(4 * MiB)
    await store.put(data, sha256(data))
    open_before = len(os.listdir("/proc/self/fd"))
    async with aclosing(store.read(sha256(data))) as chunks:
        async for _ in chunks:
            break
    assert len(os.listdir("/proc/self/fd")) == open_before


async def test_filesystem_storage_failure_is_unavailable(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    (tmp_path / "ingest").rmdir()
    (tmp_path / "ingest").write_bytes(b"")  # ingest dir replaced by a file: ENOTDIR
    with pytest.raises(Unavailable):
        await store.start_ingest("up-1")


async def test_filesystem_memory_stays_flat_for_large_ingest(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    chunk = os.urandom(64 * 1024)
    count = 1024  # 64 MiB
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(chunk)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    await store.start_ingest("big")
    tracemalloc.start()
    try:
        await store.append("big", chunks(), offset=0)
        await store.commit("big", f"sha256:{expected.hexdigest()}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert await store.stat(f"sha256:{expected.hexdigest()}") == 64 * MiB
    assert peak < 8 * MiB


CRASHING_WRITER = """
import asyncio, sys
from pathlib import Path
from moorage.store.blobs.filesystem import FilesystemBlobStore

async def main() -> None:
    store = FilesystemBlobStore(Path(sys.argv[1]))
    await store.start_ingest("crash")

    async def chunks():
        yield b"a" * (2 * 1024 * 1024)
        print("sent", flush=True)
        await asyncio.sleep(3600)

    await store.append("crash", chunks(), offset=0)

asyncio.run(main())
"""


async def wait_for_size(path: Path, size: int) -> None:
    for _ in range(500):
        if path.exists() and path.stat().st_size == size:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never reached {size} bytes")


async def test_filesystem_survives_sigkill_mid_upload(tmp_path: Path) -> None:
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_WRITER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert writer.stdout is not None
    assert await asyncio.wait_for(writer.stdout.readline(), timeout=30) == b"sent\n"
    await wait_for_size(tmp_path / "ingest" / "crash", 2 * MiB)
    writer.kill()
    await writer.wait()
    assert files_under(tmp_path / "blobs") == []

    restarted = FilesystemBlobStore(tmp_path)
    size = await restarted.ingest_size("crash")
    await restarted.append("crash", stream(b"tail"), offset=size)
    data = b"a" * (2 * MiB) + b"tail"
    assert await restarted.commit("crash", sha256(data)) == len(data)
    assert await restarted.read_all(sha256(data)) == data
