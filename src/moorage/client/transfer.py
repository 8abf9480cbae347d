"""Push, pull and inspect whole images with a :class:`~moorage.client.oci.RegistryClient`.

* :func:`push_bundle` uploads the blobs of an :class:`ImageBundle` that the repository lacks
  (``HEAD`` first, a few in parallel), then the manifests an index lists (by digest), then the
  top manifest under the tag — so a tag never names content that is not all there.
* :func:`resolve_image` follows a reference to the manifest of one platform and its config.
* :func:`pull_to_layout` writes that manifest, its config and layers into an OCI image layout;
  blobs already in the layout are not fetched again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from moorage.client.images import LayoutWriter, config_summary
from moorage.client.oci import (
    IMAGE_MANIFEST_TYPES,
    BlobSource,
    Descriptor,
    ImageBundle,
    Manifest,
    NoMatchingPlatform,
    Phase,
    Progress,
    ProgressCallback,
    RegistryClient,
    RegistryError,
    image_platforms,
    select_platform,
)
from moorage.core.errors import InvalidArgument
from moorage.core.platform import Platform

T = TypeVar("T")


async def _all(jobs: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Run ``jobs`` at most ``limit`` at a time; the first failure cancels the rest."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- push -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    repository: str
    reference: str  # the tag (or digest) pushed
    digest: str
    media_type: str
    uploaded: tuple[str, ...]
    existing: tuple[str, ...]
    bytes_uploaded: int
    manifests: tuple[str, ...]

    def to_json(self, name: str) -> dict[str, Any]:
        return {
            "reference": f"{name}:{self.reference}"
            if ":" not in self.reference
            else f"{name}@{self.reference}",
            "digest": self.digest,
            "mediaType": self.media_type,
            "manifests": list(self.manifests),
            "blobsUploaded": list(self.uploaded),
            "blobsExisting": list(self.existing),
            "bytesUploaded": self.bytes_uploaded,
        }


async def push_bundle(
    client: RegistryClient,
    repository: str,
    reference: str,
    bundle: ImageBundle,
    progress: ProgressCallback,
    *,
    parallelism: int = 3,
) -> PushResult:
    """Push ``bundle`` to ``repository`` as ``reference`` (a tag, or the top manifest's own
    digest). Raises :class:`RegistryError` (and :class:`ContentMismatch` for a corrupt source)."""
    if ":" in reference and reference != bundle.top.digest:
        raise InvalidArgument(
            f"the image's digest is {bundle.top.digest}, not {reference}", code="DigestMismatch"
        )

    async def one(blob: BlobSource) -> bool:
        if await client.blob_exists(repository, blob.digest):
            progress(Progress(blob.digest, blob.media_type, Phase.EXISTS, blob.size, blob.size))
            return False
        await client.upload_blob(repository, blob, progress)
        return True

    blobs = list(bundle.blobs.values())
    sent = await _all((one(blob) for blob in blobs), parallelism)
    for child in bundle.children:
        await client.put_manifest(repository, child.digest, child)
    digest = await client.put_manifest(repository, reference, bundle.top)
    uploaded = tuple(b.digest for b, done in zip(blobs, sent, strict=True) if done)
    return PushResult(
        repository=repository,
        reference=reference,
        digest=digest,
        media_type=bundle.top.media_type,
        uploaded=uploaded,
        existing=tuple(b.digest for b, done in zip(blobs, sent, strict=True) if not done),
        bytes_uploaded=sum(b.size for b, done in zip(blobs, sent, strict=True) if done),
        manifests=tuple(m.digest for m in bundle.manifests()),
    )


# -- resolve / inspect ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedImage:
    """A reference followed down to one platform's image."""

    top: Manifest  # what the reference names (an index or an image manifest)
    platforms: tuple[Descriptor, ...]  # the index's platform entries (empty without an index)
    manifest: Manifest  # the selected image manifest (== top without an index)
    platform: Platform | None
    config: Descriptor
    config_body: bytes
    layers: tuple[Descriptor, ...]


async def resolve_image(
    client: RegistryClient, repository: str, locator: str, platform: Platform, *, strict: bool = False
) -> ResolvedImage:
    """Fetch what ``locator`` names; for an index, the entry for ``platform``
    (:class:`~moorage.client.oci.NoMatchingPlatform` if none; also, with ``strict``, when a
    single-platform image is for another platform). Manifests and config verified."""
    top = await client.get_manifest(repository, locator)
    try:
        if top.is_index:
            entry = select_platform(top, platform)
            manifest = await client.get_manifest(repository, entry.digest, expected=entry)
            platforms = tuple(image_platforms(top))
            selected: Platform | None = entry.platform
        else:
            manifest, platforms, selected = top, (), None
        if manifest.media_type not in IMAGE_MANIFEST_TYPES:
            raise RegistryError(0, "UnsupportedMediaType", f"{manifest.digest} is not an image manifest")
        config = manifest.config()
        layers = tuple(manifest.layers())
    except InvalidArgument as exc:
        raise RegistryError(0, "MANIFEST_INVALID", f"'{repository}:{locator}': {exc.message}") from None
    body = await client.read_blob(repository, config)
    if selected is None:
        summary = config_summary(body)
        if isinstance(summary["os"], str) and isinstance(summary["architecture"], str):
            variant = summary["variant"] if isinstance(summary["variant"], str) else None
            selected = Platform(summary["os"], summary["architecture"], variant)
            if strict and not platform.matches(selected):
                raise NoMatchingPlatform(f"the image is for {selected}, not {platform}")
    return ResolvedImage(top, platforms, manifest, selected, config, body, layers)


# -- pull -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    resolved: ResolvedImage
    layout: Path
    downloaded: tuple[str, ...]
    existing: tuple[str, ...]
    bytes_downloaded: int


async def pull_to_layout(
    client: RegistryClient,
    repository: str,
    locator: str,
    platform: Platform,
    *,
    strict: bool = False,
    layout: LayoutWriter,
    ref_name: str | None,
    progress: ProgressCallback,
    planned: Callable[[int, int], None] | None = None,
    parallelism: int = 3,
) -> PullResult:
    """Pull the image ``locator`` names for ``platform`` into ``layout`` and name it
    ``ref_name`` in its ``index.json``. Every blob is verified before it is kept. ``planned``
    hears how many layers of how many bytes the image has, once it is resolved."""
    resolved = await resolve_image(client, repository, locator, platform, strict=strict)
    layout.prepare()
    layout.write_blob(resolved.config.digest, resolved.config_body)

    async def one(layer: Descriptor) -> bool:
        if layout.has(layer):
            progress(Progress(layer.digest, layer.media_type, Phase.EXISTS, layer.size, layer.size))
            return False
        await client.download_blob(repository, layer, layout.blob_path(layer.digest), progress)
        return True

    unique = list({layer.digest: layer for layer in resolved.layers}.values())
    if planned is not None:
        planned(len(unique), sum(layer.size for layer in unique))
    fetched = await _all((one(layer) for layer in unique), parallelism)
    manifest = resolved.manifest  # verified against its digest when it was fetched
    layout.write_blob(manifest.digest, manifest.body)
    layout.tag(manifest.descriptor(platform=resolved.platform), ref_name)
    return PullResult(
        resolved=resolved,
        layout=layout.root,
        downloaded=tuple(d.digest for d, done in zip(unique, fetched, strict=True) if done),
        existing=tuple(d.digest for d, done in zip(unique, fetched, strict=True) if not done),
        bytes_downloaded=sum(d.size for d, done in zip(unique, fetched, strict=True) if done),
    )
