"""Online garbage collection of registry content (real SQLite, in-memory blob backend)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moorage.core.clock import SystemClock
from moorage.registry import schema
from moorage.registry.content import Content
from moorage.registry.gc import GarbageCollector
from moorage.store.blobs.memory import MemoryBlobStore
from moorage.store.meta import MetaStore

REG, REPO = "reg1", "team/app"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def content(tmp_path: Path) -> AsyncIterator[Content]:
    store = await MetaStore.open(f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}")
    await store.migrate(list(schema.MIGRATIONS))
    yield Content(store, MemoryBlobStore(), SystemClock())
    await store.close()


async def push_blob(content: Content, data: bytes, repository: str = REPO) -> str:
    upload = await content.start_upload(REG, repository)
    await content.append_upload(REG, repository, upload, chunks(data), 0)
    await content.complete_upload(REG, repository, upload, digest(data))
    return digest(data)


async def push_image(content: Content) -> tuple[str, str]:
    config = await push_blob(content, b'{"architecture":"amd64","os":"linux"}')
    layer = await push_blob(content, b"layer-bytes")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 11}],
        }
    ).encode()
    await content.put_manifest(REG, REPO, "v1", manifest, "application/vnd.oci.image.manifest.v1+json")
    return layer, digest(manifest)


async def test_referenced_content_is_kept(content: Content) -> None:
    layer, manifest = await push_image(content)
    report = await GarbageCollector(content, upload_ttl_s=3600, interval_s=3600).run_once()
    assert report.deleted_blobs == 0
    assert await content.blobs.stat(layer) is not None
    assert await content.blobs.stat(manifest) is not None


async def test_content_of_a_deleted_repository_is_collected(content: Content) -> None:
    layer, manifest = await push_image(content)
    await content.delete_repository(REG, REPO)
    report = await GarbageCollector(content, upload_ttl_s=3600, interval_s=3600).run_once()
    assert report.deleted_blobs == 3  # config, layer and the manifest body
    assert await content.blobs.stat(layer) is None
    assert await content.blobs.stat(manifest) is None


async def test_blob_shared_with_another_repository_survives(content: Content) -> None:
    layer, _ = await push_image(content)
    await push_blob(content, b"layer-bytes", repository="other/app")
    await content.delete_repository(REG, REPO)
    await GarbageCollector(content, upload_ttl_s=3600, interval_s=3600).run_once()
    assert await content.blobs.stat(layer) is not None


async def test_abandoned_uploads_expire(content: Content) -> None:
    upload = await content.start_upload(REG, REPO)
    await content.append_upload(REG, REPO, upload, chunks(b"partial"), 0)
    report = await GarbageCollector(content, upload_ttl_s=0, interval_s=3600).run_once()
    assert report.expired_uploads == 1
    assert await content.blobs.ingests() == []
