"""Repository content: blobs linked into repositories, upload sessions, manifests, tags,
referrers, and the catalog — the OCI distribution-spec v1.1 data model.

Bytes live in the shared, content-addressed :class:`~moorage.store.blobs.BlobStore` (so a blob
pushed to two repositories or registries is stored once); which repository may see which blob,
and everything else, lives in the metadata store. Every method validates its input and raises
an error carrying the distribution spec's code; nothing is written when it raises.
"""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.core.clock import Clock
from moorage.core.errors import InvalidArgument, NotFound, NotSupported
from moorage.registry import schema as t
from moorage.registry.manifests import ParsedManifest, digest_of, parse_manifest
from moorage.registry.records import ManifestInfo, RepositoryInfo, TagInfo
from moorage.store.blobs import BlobStore, DigestInvalid, parse_digest
from moorage.store.meta import MetaStore

# distribution's reference grammar for repository names (path components joined by "/").
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
MAX_NAME = 255


class NameInvalid(InvalidArgument):
    default_code = "NAME_INVALID"


class NameUnknown(NotFound):
    default_code = "NAME_UNKNOWN"


class ManifestUnknown(NotFound):
    default_code = "MANIFEST_UNKNOWN"


class ManifestBlobUnknown(InvalidArgument):
    default_code = "MANIFEST_BLOB_UNKNOWN"


class BlobUnknown(NotFound):
    default_code = "BLOB_UNKNOWN"


class UploadUnknown(NotFound):
    default_code = "BLOB_UPLOAD_UNKNOWN"


class TagInvalid(InvalidArgument):
    default_code = "TAG_INVALID"


class Unsupported(NotSupported):
    default_code = "UNSUPPORTED"


def validate_repository(name: str) -> str:
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise NameInvalid(f"invalid repository name '{name[:300]}'")
    return name


def is_digest(reference: str) -> bool:
    return ":" in reference


def validate_reference(reference: str) -> str:
    """A tag or a digest."""
    if is_digest(reference):
        parse_digest(reference)
    elif not _TAG.match(reference):
        raise TagInvalid(f"invalid tag '{reference[:200]}'")
    return reference


@dataclass(frozen=True)
class StoredManifest:
    info: ManifestInfo
    body: bytes


def _manifest_info(row: Any, tags: tuple[str, ...] = ()) -> ManifestInfo:
    return ManifestInfo(
        repository=row.repository,
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        artifact_type=row.artifact_type,
        subject=row.subject,
        config_media_type=row.config_media_type,
        annotations=row.annotations,
        created_at=row.created_at,
        tags=tags,
    )


# Hot-path statements, built once (building a statement costs more than running it on SQLite).
# Bound-parameter names differ from column names: UPDATE and INSERT reserve those for values.
_registry: sa.BindParameter[str] = sa.bindparam("in_registry")
_repository: sa.BindParameter[str] = sa.bindparam("in_repository")


def _in_repository(table: sa.Table, column: str = "repository") -> sa.ColumnElement[bool]:
    return sa.and_(table.c.registry == _registry, table.c[column] == _repository)


_REPOSITORY_EXISTS = sa.select(t.repositories.c.name).where(_in_repository(t.repositories, "name"))
_TOUCH_REPOSITORY = (
    t.repositories.update()
    .where(_in_repository(t.repositories, "name"))
    .values(updated_at=sa.bindparam("in_now"))
)
_LINKED_SIZE = sa.select(t.blob_links.c.size).where(
    _in_repository(t.blob_links), t.blob_links.c.digest == sa.bindparam("in_digest")
)
_UPLOAD_EXISTS = sa.select(t.uploads.c.id).where(
    t.uploads.c.id == sa.bindparam("in_id"),
    t.uploads.c.registry == _registry,
    t.uploads.c.repository == _repository,
)
_DELETE_UPLOAD = t.uploads.delete().where(t.uploads.c.id == sa.bindparam("in_id"))
_MANIFEST_BY_DIGEST = sa.select(t.manifests).where(
    _in_repository(t.manifests), t.manifests.c.digest == sa.bindparam("in_digest")
)
_MANIFEST_EXISTS = sa.select(t.manifests.c.digest).where(
    _in_repository(t.manifests), t.manifests.c.digest == sa.bindparam("in_digest")
)
_MANIFEST_BY_TAG = (
    sa.select(t.manifests)
    .select_from(
        t.tags.join(
            t.manifests,
            sa.and_(
                t.manifests.c.registry == t.tags.c.registry,
                t.manifests.c.repository == t.tags.c.repository,
                t.manifests.c.digest == t.tags.c.digest,
            ),
        )
    )
    .where(_in_repository(t.tags), t.tags.c.name == sa.bindparam("in_tag"))
)
_TAG_EXISTS = sa.select(t.tags.c.digest).where(
    _in_repository(t.tags), t.tags.c.name == sa.bindparam("in_tag")
)
_TAGS_OF_DIGEST = (
    sa.select(t.tags.c.name)
    .where(_in_repository(t.tags), t.tags.c.digest == sa.bindparam("in_digest"))
    .order_by(t.tags.c.name)
)
_UPDATE_TAG = (
    t.tags.update()
    .where(_in_repository(t.tags), t.tags.c.name == sa.bindparam("in_tag"))
    .values(digest=sa.bindparam("in_digest"), updated_at=sa.bindparam("in_now"))
)


class Content:
    def __init__(self, store: MetaStore, blobs: BlobStore, clock: Clock) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock
        # Held while a blob is being linked and while GC sweeps, so a sweep never removes a blob
        # between its commit and its link (online GC without racing in-flight pushes).
        self.link_lock = asyncio.Lock()

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    # -- repositories ---------------------------------------------------------------------------

    def _touch_repository(self, conn: Connection, registry: str, repository: str) -> None:
        now = self._clock.now()
        args = {"in_registry": registry, "in_repository": repository, "in_now": now}
        if not conn.execute(_TOUCH_REPOSITORY, args).rowcount:
            conn.execute(
                t.repositories.insert(),
                {"registry": registry, "name": repository, "created_at": now, "updated_at": now},
            )

    async def repository_exists(self, registry: str, repository: str) -> bool:
        args = {"in_registry": registry, "in_repository": repository}
        return await self._store.read(lambda conn: conn.execute(_REPOSITORY_EXISTS, args).first() is not None)

    async def catalog(self, registry: str, n: int | None = None, last: str | None = None) -> list[str]:
        query = sa.select(t.repositories.c.name).where(t.repositories.c.registry == registry)
        if last:
            query = query.where(t.repositories.c.name > last)
        query = query.order_by(t.repositories.c.name)
        if n is not None:
            query = query.limit(n)
        async with self._store.connect() as conn:
            return [r.name for r in await conn.execute(query)]

    async def repository_info(self, registry: str, repository: str) -> RepositoryInfo:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.repositories).where(
                        t.repositories.c.registry == registry, t.repositories.c.name == repository
                    )
                )
            ).first()
            if row is None:
                raise NameUnknown(f"repository name not known to registry: '{repository}'")
            manifests = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.manifests)
                    .where(t.manifests.c.registry == registry, t.manifests.c.repository == repository)
                )
            ).scalar_one()
            tag_count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.tags)
                    .where(t.tags.c.registry == registry, t.tags.c.repository == repository)
                )
            ).scalar_one()
        return RepositoryInfo(row.name, row.created_at, row.updated_at, int(manifests), int(tag_count))

    async def delete_repository(self, registry: str, repository: str) -> tuple[list[str], list[str]]:
        """Delete a repository with its manifests, tags and blob links; return (manifests, tags)."""
        await self.repository_info(registry, repository)
        async with self._store.begin() as conn:
            digests = [
                r.digest
                for r in await conn.execute(
                    sa.select(t.manifests.c.digest).where(
                        t.manifests.c.registry == registry, t.manifests.c.repository == repository
                    )
                )
            ]
            tag_names = [
                r.name
                for r in await conn.execute(
                    sa.select(t.tags.c.name).where(
                        t.tags.c.registry == registry, t.tags.c.repository == repository
                    )
                )
            ]
            for table in (t.tags, t.manifest_refs, t.manifests, t.blob_links):
                await conn.execute(
                    table.delete().where(table.c.registry == registry, table.c.repository == repository)
                )
            await conn.execute(
                t.repositories.delete().where(
                    t.repositories.c.registry == registry, t.repositories.c.name == repository
                )
            )
        return digests, tag_names

    async def delete_registry_content(self, registry: str) -> None:
        async with self._store.begin() as conn:
            for table in (t.tags, t.manifest_refs, t.manifests, t.blob_links, t.uploads):
                await conn.execute(table.delete().where(table.c.registry == registry))
            await conn.execute(t.repositories.delete().where(t.repositories.c.registry == registry))

    # -- blobs ----------------------------------------------------------------------------------

    @staticmethod
    def _linked_size(conn: Connection, registry: str, repository: str, digest: str) -> int | None:
        args = {"in_registry": registry, "in_repository": repository, "in_digest": digest}
        row = conn.execute(_LINKED_SIZE, args).first()
        return int(row.size) if row else None

    async def blob_size(self, registry: str, repository: str, digest: str) -> int:
        """Size of a blob visible in the repository; :class:`BlobUnknown` otherwise."""
        parse_digest(digest)
        size = await self._store.read(lambda conn: self._linked_size(conn, registry, repository, digest))
        if size is None or await self._blobs.stat(digest) is None:
            raise BlobUnknown(f"blob unknown to registry: '{digest}'")
        return size

    def read_blob(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._blobs.read(digest, start, end)

    def _link(
        self,
        conn: Connection,
        *,
        registry: str,
        repository: str,
        digest: str,
        size: int,
        upload_id: str | None = None,
    ) -> None:
        """Link a blob into the repository (creating the repository), and end the upload
        session it came from, in the caller's transaction."""
        self._touch_repository(conn, registry, repository)
        if self._linked_size(conn, registry, repository, digest) is None:
            conn.execute(
                t.blob_links.insert(),
                {
                    "registry": registry,
                    "repository": repository,
                    "digest": digest,
                    "size": size,
                    "created_at": self._clock.now(),
                },
            )
        if upload_id is not None:
            conn.execute(_DELETE_UPLOAD, {"in_id": upload_id})

    async def delete_blob(self, registry: str, repository: str, digest: str) -> None:
        parse_digest(digest)
        async with self._store.begin() as conn:
            result = await conn.execute(
                t.blob_links.delete().where(
                    t.blob_links.c.registry == registry,
                    t.blob_links.c.repository == repository,
                    t.blob_links.c.digest == digest,
                )
            )
        if not result.rowcount:
            raise BlobUnknown(f"blob unknown to registry: '{digest}'")

    async def mount_blob(
        self,
        registry: str,
        repository: str,
        digest: str,
        source: str | None,
        can_read: Callable[[str], Awaitable[bool]],
    ) -> int | None:
        """Link a blob from ``source`` (or, without one, from any repository of the registry the
        caller may read); return its size, or ``None`` when it cannot be mounted."""
        parse_digest(digest)
        async with self._store.connect() as conn:
            query = sa.select(t.blob_links.c.repository, t.blob_links.c.size).where(
                t.blob_links.c.registry == registry, t.blob_links.c.digest == digest
            )
            if source is not None:
                query = query.where(t.blob_links.c.repository == source)
            candidates = list(await conn.execute(query))
        for row in candidates:
            if await can_read(row.repository) and await self._blobs.stat(digest) is not None:
                size = int(row.size)
                async with self.link_lock:
                    await self._store.write(
                        functools.partial(
                            self._link, registry=registry, repository=repository, digest=digest, size=size
                        )
                    )
                return size
        return None

    # -- uploads --------------------------------------------------------------------------------

    async def start_upload(self, registry: str, repository: str) -> str:
        upload_id = str(uuid.uuid4())
        await self._blobs.start_ingest(upload_id)
        row = {
            "id": upload_id,
            "registry": registry,
            "repository": repository,
            "started_at": self._clock.now(),
        }
        await self._store.write(lambda conn: conn.execute(t.uploads.insert(), row))
        return upload_id

    async def upload_size(self, registry: str, repository: str, upload_id: str) -> int:
        await self._require_upload(registry, repository, upload_id)
        return await self._blobs.ingest_size(upload_id)

    async def _require_upload(self, registry: str, repository: str, upload_id: str) -> None:
        try:
            uuid.UUID(upload_id)
        except ValueError as exc:
            raise UploadUnknown("blob upload unknown to registry") from exc
        args = {"in_id": upload_id, "in_registry": registry, "in_repository": repository}
        if not await self._store.read(lambda conn: conn.execute(_UPLOAD_EXISTS, args).first() is not None):
            raise UploadUnknown("blob upload unknown to registry")

    async def append_upload(
        self, registry: str, repository: str, upload_id: str, chunks: AsyncIterator[bytes], offset: int | None
    ) -> int:
        """Append at ``offset`` (``None``: at the current end); return the new size."""
        await self._require_upload(registry, repository, upload_id)
        start = await self._blobs.ingest_size(upload_id) if offset is None else offset
        return await self._blobs.append(upload_id, chunks, offset=start)

    async def complete_upload(self, registry: str, repository: str, upload_id: str, digest: str) -> int:
        """Verify and commit the upload as ``digest`` and link it into the repository."""
        parse_digest(digest)
        await self._require_upload(registry, repository, upload_id)
        ended = False
        try:
            async with self.link_lock:
                size = await self._blobs.commit(upload_id, digest)
                # Link and end the session in one transaction.
                await self._store.write(
                    functools.partial(
                        self._link,
                        registry=registry,
                        repository=repository,
                        digest=digest,
                        size=size,
                        upload_id=upload_id,
                    )
                )
                ended = True
        finally:
            if not ended:
                await self._store.write(lambda conn: conn.execute(_DELETE_UPLOAD, {"in_id": upload_id}))
        return size

    async def cancel_upload(self, registry: str, repository: str, upload_id: str) -> None:
        await self._require_upload(registry, repository, upload_id)
        await self._blobs.abort(upload_id)
        await self._store.write(lambda conn: conn.execute(_DELETE_UPLOAD, {"in_id": upload_id}))

    async def expire_uploads(self, older_than_s: float) -> int:
        """Abort upload sessions idle for longer than ``older_than_s``; return how many."""
        now = self._clock.timestamp()
        expired = 0
        async with self._store.connect() as conn:
            known = {r.id for r in await conn.execute(sa.select(t.uploads.c.id))}
        for ingest_id, mtime in await self._blobs.ingests():
            if now - mtime < older_than_s:
                continue
            await self._blobs.abort(ingest_id)
            if ingest_id in known:
                async with self._store.begin() as conn:
                    await conn.execute(t.uploads.delete().where(t.uploads.c.id == ingest_id))
            expired += 1
        return expired

    # -- manifests ------------------------------------------------------------------------------

    async def put_manifest(
        self, registry: str, repository: str, reference: str, body: bytes, content_type: str | None
    ) -> ParsedManifest:
        """Store a manifest under its digest and, when ``reference`` is a tag, tag it."""
        validate_reference(reference)
        parsed = parse_manifest(body, content_type)
        if is_digest(reference):
            algorithm, _ = parse_digest(reference)
            if digest_of(body, algorithm) != reference:
                raise DigestInvalid("the manifest's digest does not match the reference")
        digest = reference if is_digest(reference) else parsed.digest

        def check_references(conn: Connection) -> None:
            for ref in parsed.blob_references:
                if self._linked_size(conn, registry, repository, ref) is None:
                    raise ManifestBlobUnknown(f"blob unknown to registry: '{ref}'")
            for child in parsed.manifests:
                args = {"in_registry": registry, "in_repository": repository, "in_digest": child.digest}
                if conn.execute(_MANIFEST_EXISTS, args).first() is None:
                    raise ManifestBlobUnknown(f"manifest unknown to registry: '{child.digest}'")

        await self._store.read(check_references)
        # Under the link lock, so garbage collection never sees the body before its record.
        async with self.link_lock:
            await self._blobs.put(body, digest)
            await self._store.write(
                lambda conn: self._record_manifest(
                    conn, registry, repository, reference, digest, parsed, body
                )
            )
        return parsed

    def _record_manifest(  # noqa: PLR0917 - one call site, all positional for brevity
        self,
        conn: Connection,
        registry: str,
        repository: str,
        reference: str,
        digest: str,
        parsed: ParsedManifest,
        body: bytes,
    ) -> None:
        now = self._clock.now()
        self._touch_repository(conn, registry, repository)
        args = {"in_registry": registry, "in_repository": repository, "in_digest": digest}
        if conn.execute(_MANIFEST_EXISTS, args).first() is None:
            conn.execute(
                t.manifests.insert(),
                {
                    "registry": registry,
                    "repository": repository,
                    "digest": digest,
                    "media_type": parsed.media_type,
                    "size": len(body),
                    "artifact_type": parsed.artifact_type,
                    "subject": parsed.subject.digest if parsed.subject else None,
                    "config_media_type": parsed.config.media_type if parsed.config else None,
                    "annotations": parsed.annotations,
                    "created_at": now,
                },
            )
            refs = [(d, "blob") for d in parsed.blob_references] + [
                (m.digest, "manifest") for m in parsed.manifests
            ]
            # A manifest may reference the same blob twice (e.g. identical layers).
            rows = [
                {
                    "registry": registry,
                    "repository": repository,
                    "manifest": digest,
                    "target": target,
                    "kind": kind,
                }
                for target, kind in dict(refs).items()
            ]
            if rows:
                conn.execute(t.manifest_refs.insert(), rows)
        if not is_digest(reference):
            self._set_tag(conn, registry, repository, reference, digest)

    def _set_tag(self, conn: Connection, registry: str, repository: str, tag: str, digest: str) -> None:
        now = self._clock.now()
        args = {"in_registry": registry, "in_repository": repository, "in_tag": tag}
        if not conn.execute(_UPDATE_TAG, {**args, "in_digest": digest, "in_now": now}).rowcount:
            conn.execute(
                t.tags.insert(),
                {
                    "registry": registry,
                    "repository": repository,
                    "name": tag,
                    "digest": digest,
                    "created_at": now,
                    "updated_at": now,
                },
            )

    async def resolve(
        self, registry: str, repository: str, reference: str, *, with_tags: bool = False
    ) -> ManifestInfo:
        """The manifest a tag or digest names (with the tags on it only if ``with_tags``);
        :class:`NameUnknown` when the repository does not exist, :class:`ManifestUnknown` when it
        has no such manifest. A hit is one statement: a tag or manifest exists only in an existing
        repository."""
        validate_reference(reference)
        args = {"in_registry": registry, "in_repository": repository}

        def find(conn: Connection) -> ManifestInfo:
            if is_digest(reference):
                row = conn.execute(_MANIFEST_BY_DIGEST, {**args, "in_digest": reference}).first()
            else:
                row = conn.execute(_MANIFEST_BY_TAG, {**args, "in_tag": reference}).first()
            if row is None:
                if conn.execute(_REPOSITORY_EXISTS, args).first() is None:
                    raise NameUnknown(f"repository name not known to registry: '{repository}'")
                if (
                    not is_digest(reference)
                    and conn.execute(_TAG_EXISTS, {**args, "in_tag": reference}).first() is None
                ):
                    raise ManifestUnknown(f"manifest tagged by '{reference}' is not found")
                raise ManifestUnknown(f"manifest unknown to registry: '{reference}'")
            tags: tuple[str, ...] = ()
            if with_tags:
                tags = tuple(r.name for r in conn.execute(_TAGS_OF_DIGEST, {**args, "in_digest": row.digest}))
            return _manifest_info(row, tags)

        return await self._store.read(find)

    async def get_manifest(self, registry: str, repository: str, reference: str) -> StoredManifest:
        info = await self.resolve(registry, repository, reference)
        return StoredManifest(info, await self._blobs.read_all(info.digest))

    async def delete_manifest(self, registry: str, repository: str, reference: str) -> None:
        """By digest: the manifest and every tag on it. By tag: only the tag."""
        info = await self.resolve(registry, repository, reference)
        async with self._store.begin() as conn:
            if not is_digest(reference):
                await conn.execute(
                    t.tags.delete().where(
                        t.tags.c.registry == registry,
                        t.tags.c.repository == repository,
                        t.tags.c.name == reference,
                    )
                )
                return
            await conn.execute(
                t.tags.delete().where(
                    t.tags.c.registry == registry,
                    t.tags.c.repository == repository,
                    t.tags.c.digest == info.digest,
                )
            )
            await conn.execute(
                t.manifest_refs.delete().where(
                    t.manifest_refs.c.registry == registry,
                    t.manifest_refs.c.repository == repository,
                    t.manifest_refs.c.manifest == info.digest,
                )
            )
            await conn.execute(
                t.manifests.delete().where(
                    t.manifests.c.registry == registry,
                    t.manifests.c.repository == repository,
                    t.manifests.c.digest == info.digest,
                )
            )

    async def tags(
        self, registry: str, repository: str, n: int | None = None, last: str | None = None
    ) -> list[str]:
        query = sa.select(t.tags.c.name).where(
            t.tags.c.registry == registry, t.tags.c.repository == repository
        )
        if last:
            query = query.where(t.tags.c.name > last)
        query = query.order_by(t.tags.c.name)
        if n is not None:
            query = query.limit(n)
        args = {"in_registry": registry, "in_repository": repository}

        def names(conn: Connection) -> list[str]:
            if conn.execute(_REPOSITORY_EXISTS, args).first() is None:
                raise NameUnknown(f"repository name not known to registry: '{repository}'")
            return [r.name for r in conn.execute(query)]

        return await self._store.read(names)

    async def tag_infos(self, registry: str, repository: str) -> list[TagInfo]:
        if not await self.repository_exists(registry, repository):
            raise NameUnknown(f"repository name not known to registry: '{repository}'")
        async with self._store.connect() as conn:
            rows = await conn.execute(
                sa.select(t.tags)
                .where(t.tags.c.registry == registry, t.tags.c.repository == repository)
                .order_by(t.tags.c.name)
            )
            return [TagInfo(r.name, r.digest, r.created_at, r.updated_at) for r in rows]

    async def manifests_of(self, registry: str, repository: str) -> list[ManifestInfo]:
        if not await self.repository_exists(registry, repository):
            raise NameUnknown(f"repository name not known to registry: '{repository}'")
        async with self._store.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(t.manifests)
                    .where(t.manifests.c.registry == registry, t.manifests.c.repository == repository)
                    .order_by(t.manifests.c.created_at)
                )
            )
            tag_rows = list(
                await conn.execute(
                    sa.select(t.tags.c.name, t.tags.c.digest).where(
                        t.tags.c.registry == registry, t.tags.c.repository == repository
                    )
                )
            )
        by_digest: dict[str, list[str]] = {}
        for tag in tag_rows:
            by_digest.setdefault(tag.digest, []).append(tag.name)
        return [_manifest_info(r, tuple(sorted(by_digest.get(r.digest, [])))) for r in rows]

    async def referrers(
        self, registry: str, repository: str, digest: str, artifact_type: str | None
    ) -> list[ManifestInfo]:
        """Manifests in the repository whose ``subject`` is ``digest`` (optionally filtered)."""
        parse_digest(digest)
        query = sa.select(t.manifests).where(
            t.manifests.c.registry == registry,
            t.manifests.c.repository == repository,
            t.manifests.c.subject == digest,
        )
        if artifact_type:
            query = query.where(t.manifests.c.artifact_type == artifact_type)
        async with self._store.connect() as conn:
            rows = await conn.execute(query.order_by(t.manifests.c.created_at))
            return [_manifest_info(r) for r in rows]

    # -- garbage collection ---------------------------------------------------------------------

    async def referenced_digests(self) -> set[str]:
        """Every digest the metadata still needs: manifest bodies, their references, blob links."""
        async with self._store.connect() as conn:
            keep = {r.digest for r in await conn.execute(sa.select(t.manifests.c.digest))}
            keep |= {r.target for r in await conn.execute(sa.select(t.manifest_refs.c.target))}
            keep |= {r.digest for r in await conn.execute(sa.select(t.blob_links.c.digest))}
        return keep
