"""Online garbage collection: expire abandoned upload sessions and delete blobs that nothing
references any more (no repository links them and no manifest is stored under them).

It runs while the registry serves. A sweep holds :attr:`Content.link_lock`, the same lock under
which uploads are committed-and-linked and manifests are stored-and-recorded, so a blob is never
observed between being written and being referenced: in-flight pushes cannot lose data.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from moorage.core.log import get_logger
from moorage.registry.content import Content

log = get_logger("registry.gc")


@dataclass(frozen=True)
class GcReport:
    expired_uploads: int
    deleted_blobs: int
    kept_blobs: int


class GarbageCollector:
    def __init__(self, content: Content, *, upload_ttl_s: float, interval_s: float) -> None:
        self._content = content
        self._upload_ttl_s = upload_ttl_s
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> GcReport:
        expired = await self._content.expire_uploads(self._upload_ttl_s)
        deleted = kept = 0
        async with self._content.link_lock:
            referenced = await self._content.referenced_digests()
            for digest in await self._content.blobs.digests():
                if digest in referenced:
                    kept += 1
                elif await self._content.blobs.delete(digest):
                    deleted += 1
        report = GcReport(expired, deleted, kept)
        if expired or deleted:
            log.info("garbage collected", expired_uploads=expired, deleted_blobs=deleted, kept_blobs=kept)
        return report

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="registry-gc")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once()
            except Exception:  # keep collecting later; a failed sweep changes nothing
                log.exception("garbage collection failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
