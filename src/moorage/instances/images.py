"""The image source: an OCI distribution client that resolves and pulls images into a blob store.

:class:`ImageSource` speaks the distribution API over HTTPS (``httpx``, keep-alive connections
shared by every pull) to moorage's own registries and to any other:

* **Authentication** — a ``GET /v2/`` learns the registry's challenge. ``Bearer`` challenges are
  answered through the token service named by the challenge's ``realm``: anonymously,
  with Basic credentials (``GET <realm>?service=…&scope=…``, distribution's token flow; this also
  covers ACR's null-GUID user with a refresh token as password), or with an Entra access token
  exchanged at ``POST /oauth2/exchange`` for an ACR refresh token that ``POST <realm>``
  (``grant_type=refresh_token``) turns into an access token — ACR's managed-identity flow.
  ``Basic`` challenges get the Basic credential directly. Access tokens are cached per registry,
  repository and credential until shortly before they expire.
* **Manifests** — content negotiation for OCI and Docker image manifests and indexes; an index
  is narrowed to one platform (``linux/amd64`` unless asked otherwise; attestation entries are
  never chosen). Every manifest is checked against the digest it was asked by and the digest
  the registry announced, and against a size limit.
* **Blobs** — the config and the layers are streamed into the :class:`BlobStore` through
  ingests that the store verifies against the digest (and size) before committing. Blobs
  already in the store are not fetched again; layers download in parallel.
* **Failures** — every failure is a :class:`PullFailure` that says what went wrong
  (:class:`PullCause`), at which step (:class:`PullStep`), and keeps what the registry said: HTTP
  status, OCI error code and message, the peer contacted and the URL (without its query, which
  may carry signatures). Credentials and tokens never appear in messages. Only transient
  conditions are retried, a bounded number of times: connection failures and HTTP 429, 502,
  503 and 504.

Where to connect is decided per host by a :class:`TransportRouter` the composition root
provides (for example: moorage's own registries through the in-process platform channel).

Layers are stored as the registry serves them (compressed); :func:`open_layer` turns a stored
layer into a stream of tar bytes (gzip, zstd or uncompressed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import zstandard

from moorage.core.errors import AdditionalInfo, InvalidArgument, MoorageError
from moorage.core.log import get_logger
from moorage.core.platform import DEFAULT_PLATFORM, Platform
from moorage.core.reference import DOCKER_HUB, ImageReference, parse_reference
from moorage.instances.content import Leases
from moorage.store.blobs import BlobNotFound, BlobStore, DigestMismatch, SizeMismatch

log = get_logger("instances.images")

_E = TypeVar("_E", bound=BaseException)

# -- media types ----------------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        DOCKER_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
#: What manifest requests accept, most specific first.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"

MIB = 1024 * 1024
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_REDIRECTS = 5
_ERROR_BODY_LIMIT = 64 * 1024
_TOKEN_BODY_LIMIT = MIB
_MAX_CACHED_TOKENS = 512
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


# -- failures -------------------------------------------------------------------------------------


class PullCause(StrEnum):
    """What went wrong, in the terms container groups and diagnostics classify by."""

    UNREACHABLE = "unreachable"
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    DENIED = "denied"
    NAME_UNKNOWN = "name_unknown"
    MANIFEST_UNKNOWN = "manifest_unknown"
    UNSUPPORTED_PLATFORM = "unsupported_platform"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    DIGEST_MISMATCH = "digest_mismatch"
    TOO_MANY_REQUESTS = "too_many_requests"
    REGISTRY_ERROR = "registry_error"
    SIZE_LIMIT = "size_limit"
    INVALID_REFERENCE = "invalid_reference"


class PullStep(StrEnum):
    """Where it went wrong: before any request (``resolve``), while connecting (``connect``,
    ``tls``), learning how to authenticate (``challenge``, the ``GET /v2/``), getting a token
    (``token``), or fetching a manifest or a blob."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    CHALLENGE = "challenge"
    TOKEN = "token"
    MANIFEST = "manifest"
    BLOB = "blob"


_CAUSE_TEXT = {
    PullCause.UNREACHABLE: "the registry could not be reached",
    PullCause.TLS: "the TLS connection to the registry failed",
    PullCause.UNAUTHORIZED: "the registry did not accept the credentials",
    PullCause.DENIED: "the registry denied access",
    PullCause.NAME_UNKNOWN: "the repository does not exist",
    PullCause.MANIFEST_UNKNOWN: "the tag or digest does not exist",
    PullCause.UNSUPPORTED_PLATFORM: "the image has no variant for the requested platform",
    PullCause.UNSUPPORTED_MEDIA_TYPE: "the content is not a supported container image",
    PullCause.DIGEST_MISMATCH: "the registry sent content that does not match its digest",
    PullCause.TOO_MANY_REQUESTS: "the registry is rate limiting requests",
    PullCause.REGISTRY_ERROR: "the registry returned an error",
    PullCause.SIZE_LIMIT: "the content exceeds a size limit",
    PullCause.INVALID_REFERENCE: "the image reference is invalid",
}


class PullFailure(MoorageError):
    """A resolve or pull that failed, with everything known about why.

    Code ``InaccessibleImage`` (ACI's code for images it cannot pull), or
    ``RegistryErrorResponse`` when the registry itself failed or rate-limited us. The same
    fields are attached as ``additional_info`` of type ``ImagePullFailure``.
    """

    default_code = "InaccessibleImage"

    def __init__(
        self,
        detail: str,
        *,
        cause: PullCause,
        step: PullStep,
        image: str | None = None,
        status: int | None = None,
        registry_code: str | None = None,
        registry_message: str | None = None,
        peer: str | None = None,
        url: str | None = None,
    ) -> None:
        self.cause = cause
        self.step = step
        self.image = image
        self.status = status
        self.registry_code = registry_code
        self.registry_message = registry_message
        self.peer = peer
        self.url = url
        subject = f"pulling '{image}': " if image else ""
        fields: dict[str, Any] = {
            "cause": str(cause),
            "step": str(step),
            "image": image,
            "status": status,
            "registryCode": registry_code,
            "registryMessage": registry_message,
            "peer": peer,
            "url": url,
        }
        info = {key: value for key, value in fields.items() if value is not None}
        retryable = cause in (PullCause.TOO_MANY_REQUESTS, PullCause.REGISTRY_ERROR)
        super().__init__(
            f"{subject}{_CAUSE_TEXT[cause]}: {detail}",
            code="RegistryErrorResponse" if retryable else None,
            additional_info=(AdditionalInfo("ImagePullFailure", info),),
        )


class UnsupportedLayer(InvalidArgument):
    """:func:`open_layer` was given a media type that is not a layer."""

    default_code = "UnsupportedMediaType"


# -- platforms ------------------------------------------------------------------------------------


def _platform_rank(wanted: Platform, candidate: Platform) -> int | None:
    """``0`` for an exact match, a larger number for a less exact but runnable one (an ``arm/v7``
    host runs ``arm/v6``, an ``amd64/v3`` host runs ``amd64``), ``None`` for no match."""
    w, c = wanted.normalized(), candidate.normalized()
    if w.os != c.os or w.architecture != c.architecture:
        return None
    if w.variant == c.variant:
        return 0
    if w.architecture in ("arm", "amd64"):
        level_w = int(w.variant[1:]) if w.variant and w.variant[1:].isdigit() else 1
        level_c = int(c.variant[1:]) if c.variant and c.variant[1:].isdigit() else 1
        if c.variant is not None and not c.variant[1:].isdigit():
            return None
        if level_c < level_w:
            return level_w - level_c
    return None


# -- credentials and routing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Anonymous:
    """No credentials: anonymous tokens where the registry hands them out."""


ANONYMOUS = Anonymous()


@dataclass(frozen=True)
class BasicCredential:
    """A user name and password: an ACR admin user, a service principal (app id + secret), a
    repository-scoped token, or ACR's null-GUID user with a refresh token as password."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, eq=False)
class EntraExchange:
    """A managed identity (or any Entra principal): ``get_token`` returns an Entra access token
    (the caller chooses its audience), which the registry exchanges for its own tokens."""

    get_token: Callable[[], Awaitable[str]] = field(repr=False)


Credential = Anonymous | BasicCredential | EntraExchange


class TransportRouter(Protocol):
    """Where to send requests for a host (``name[:port]`` as it appears in references, realms
    and redirects): the host to address instead, and the transport to use (``None``: the
    network, with this source's TLS settings)."""

    def route(self, host: str) -> tuple[str, httpx.AsyncBaseTransport | None]: ...


class DirectRouter:
    """Every host as itself, over the network."""

    def route(self, host: str) -> tuple[str, httpx.AsyncBaseTransport | None]:
        return host, None


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedImage:
    """What a reference names, down to the image for one platform. Nothing of it is stored."""

    reference: ImageReference
    digest: str  # what the reference resolved to: an index or an image manifest
    media_type: str
    platform: Platform  # the platform selected (from the index entry, else from the config)
    manifest_digest: str  # the platform's image manifest (== digest without an index)
    manifest_media_type: str
    manifest: bytes
    index: bytes | None
    config_descriptor: Descriptor
    config: bytes
    layers: tuple[Descriptor, ...]

    @property
    def pinned(self) -> ImageReference:
        """The reference pinned to the resolved digest."""
        return self.reference.with_digest(self.digest)

    def config_json(self) -> dict[str, Any]:
        parsed = json.loads(self.config)
        return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    size: int
    diff_id: str  # digest of the uncompressed tar (from the config's rootfs.diff_ids)


@dataclass(frozen=True)
class PulledImage:
    """An image whose manifests, config and layers are all in the blob store."""

    image: ResolvedImage
    config: dict[str, Any]
    layers: tuple[Layer, ...]
    lease: str | None

    @property
    def digest(self) -> str:
        return self.image.digest

    @property
    def manifest_digest(self) -> str:
        return self.image.manifest_digest


class ProgressState(StrEnum):
    PRESENT = "present"  # already in the store: not fetched
    DOWNLOADING = "downloading"
    DONE = "done"


@dataclass(frozen=True)
class PullProgress:
    digest: str
    media_type: str
    completed: int
    total: int
    state: ProgressState


ProgressCallback = Callable[[PullProgress], None]


# -- the puller -----------------------------------------------------------------------------------


@dataclass
class _Session:
    """One pull's view of one repository: where it is, with what credential, and the
    ``Authorization`` value in force (``None``: none needed) until when."""

    reference: ImageReference
    credential: Credential
    base: str  # scheme://host of the registry API, before routing
    image: str
    scope: str
    auth: str | None = None
    expires_at: float = 0.0  # time.monotonic() after which ``auth`` is renewed
    challenges: list[tuple[str, dict[str, str]]] | None = None  # what ``auth`` answered
    from_cache: bool = False
    authenticated: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> tuple[str, str, Credential]:
        return (self.base, self.scope, self.credential)

    def stale(self) -> bool:
        return self.auth is not None and time.monotonic() >= self.expires_at


class ImageSource:
    """Resolves and pulls images (see the module docstring). Use as an async context manager,
    or call :meth:`aclose` when done: it owns keep-alive connections.

    ``blobs`` receives everything pulled. ``leases`` (optional) records what each pull holds so
    that :meth:`Leases.collect` never removes it. ``insecure_registries`` lists hosts
    (``host[:port]``, as in references or after routing) spoken to over plain HTTP.
    """

    def __init__(
        self,
        blobs: BlobStore,
        *,
        router: TransportRouter | None = None,
        verify: ssl.SSLContext | bool = True,
        parallelism: int = 4,
        max_retries: int = 3,
        max_manifest_bytes: int = 4 * MIB,
        max_config_bytes: int = 8 * MIB,
        max_layer_bytes: int = 16 * 1024 * MIB,
        platform: Platform = DEFAULT_PLATFORM,
        leases: Leases | None = None,
        insecure_registries: Collection[str] = (),
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        pull_lease_ttl_s: float = 24 * 3600.0,
    ) -> None:
        if parallelism < 1:
            raise InvalidArgument("parallelism must be at least 1", code="InvalidPullSettings")
        if max_retries < 0:
            raise InvalidArgument("max_retries must not be negative", code="InvalidPullSettings")
        self._blobs = blobs
        self._router: TransportRouter = router or DirectRouter()
        self._verify = verify
        self._parallelism = parallelism
        self._max_retries = max_retries
        self._max_manifest_bytes = max_manifest_bytes
        self._max_config_bytes = max_config_bytes
        self._max_layer_bytes = max_layer_bytes
        self._platform = platform
        self._leases = leases
        self._insecure = frozenset(h.lower() for h in insecure_registries)
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._pull_lease_ttl_s = pull_lease_ttl_s
        self._clients: dict[int, tuple[httpx.AsyncBaseTransport | None, httpx.AsyncClient]] = {}
        self._tokens: dict[tuple[str, str, Credential], tuple[str | None, float]] = {}

    async def __aenter__(self) -> ImageSource:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (the source can be used again afterwards)."""
        clients, self._clients = self._clients, {}
        for _, client in clients.values():
            await client.aclose()

    # -- public operations ----------------------------------------------------------------------

    async def resolve(
        self,
        ref: str | ImageReference,
        credential: Credential = ANONYMOUS,
        *,
        platform: Platform | None = None,
    ) -> ResolvedImage:
        """Resolve ``ref`` to its manifest for ``platform`` (default: the source's) and fetch
        its config, without downloading layers or storing anything: proof that the image is
        there and that ``credential`` may pull it. Raises :class:`PullFailure`."""
        session = self._session(self._reference(ref), credential)
        return await self._resolve(session, platform or self._platform)

    async def pull(
        self,
        ref: str | ImageReference,
        credential: Credential = ANONYMOUS,
        *,
        lease: str | None = None,
        progress: ProgressCallback | None = None,
        platform: Platform | None = None,
    ) -> PulledImage:
        """Resolve ``ref`` and store its manifests, config and layers in the blob store.

        With ``lease``, every digest of the image is added to that lease (created if needed)
        once the manifests are resolved and *before* any blob is looked up in or written to the
        store, and stays there — also when the pull fails — until
        the caller releases the lease. Without one, a temporary lease protects the pull while
        it runs and is released at the end. Raises :class:`PullFailure`; an unusable lease id
        raises :class:`InvalidArgument`.
        """
        reference = self._reference(ref)
        if lease is not None and self._leases is None:
            raise InvalidArgument("this image source keeps no leases", code="LeasesNotConfigured")
        lease_id = lease if lease is not None else f"pull-{uuid.uuid4().hex}"
        if self._leases is not None:
            await self._leases.acquire(lease_id, ttl_s=None if lease is not None else self._pull_lease_ttl_s)
        try:
            session = self._session(reference, credential)
            resolved = await self._resolve(session, platform or self._platform)
            layers = self._layers_of(session, resolved)
            held = {resolved.digest, resolved.manifest_digest, resolved.config_descriptor.digest}
            held |= {layer.digest for layer in layers}
            if self._leases is not None:
                await self._leases.add(lease_id, held)
            small = [(resolved.config_descriptor.digest, resolved.config)]
            small.append((resolved.manifest_digest, resolved.manifest))
            if resolved.index is not None:
                small.append((resolved.digest, resolved.index))
            for digest, data in small:
                if await self._blobs.stat(digest) is None:
                    await self._blobs.put(data, digest)
            unique = {layer.digest: layer for layer in resolved.layers}
            await _all_or_nothing(
                [self._download(session, d, progress) for d in unique.values()], self._parallelism
            )
        finally:
            if lease is None and self._leases is not None:
                await self._leases.release(lease_id)
        log.info(
            "pulled image",
            image=str(reference),
            digest=resolved.digest,
            platform=str(resolved.platform),
            layers=len(layers),
        )
        return PulledImage(resolved, resolved.config_json(), layers, lease)

    # -- resolving ------------------------------------------------------------------------------

    def _reference(self, ref: str | ImageReference) -> ImageReference:
        if isinstance(ref, ImageReference):
            return ref
        try:
            return parse_reference(ref)
        except InvalidArgument as exc:
            raise PullFailure(exc.message, cause=PullCause.INVALID_REFERENCE, step=PullStep.RESOLVE) from exc

    def _session(self, reference: ImageReference, credential: Credential) -> _Session:
        host = "registry-1.docker.io" if reference.registry == DOCKER_HUB else reference.registry
        routed, _ = self._router.route(host)
        scheme = "http" if self._is_insecure(host) or self._is_insecure(routed) else "https"
        return _Session(
            reference=reference,
            credential=credential,
            base=f"{scheme}://{host}",
            image=str(reference),
            scope=f"repository:{reference.repository}:pull",
        )

    def _is_insecure(self, host: str) -> bool:
        return host.lower() in self._insecure

    async def _resolve(self, session: _Session, platform: Platform) -> ResolvedImage:
        reference = session.reference
        top = await self._manifest(session, reference.locator)
        index: bytes | None = None
        if top.media_type in INDEX_TYPES:
            index = top.body
            entry = self._select(session, top.body, platform)
            manifest = await self._manifest(session, entry.digest, expected=entry)
            if manifest.media_type not in IMAGE_MANIFEST_TYPES:
                raise self._unsupported(
                    session, f"the index entry for {platform} is a '{manifest.media_type}'"
                )
            selected = entry.platform or platform
        else:
            manifest = top
            selected = None
        config_descriptor, layers = self._image_manifest(session, manifest)
        config = await self._small_blob(session, config_descriptor)
        config_platform = self._check_config(session, config, selected is None, platform)
        return ResolvedImage(
            reference=reference,
            digest=top.digest,
            media_type=top.media_type,
            platform=selected or config_platform,
            manifest_digest=manifest.digest,
            manifest_media_type=manifest.media_type,
            manifest=manifest.body,
            index=index,
            config_descriptor=config_descriptor,
            config=config,
            layers=layers,
        )

    def _select(self, session: _Session, body: bytes, platform: Platform) -> Descriptor:
        try:
            entries = _parse_index(body)
        except _Malformed as exc:
            raise self._malformed(session, f"invalid image index: {exc}") from None
        best: tuple[int, Descriptor] | None = None
        seen: list[str] = []
        for entry in entries:
            if entry.platform is None or _is_attestation(entry):
                continue
            if entry.media_type not in IMAGE_MANIFEST_TYPES:
                continue
            seen.append(str(entry.platform))
            rank = _platform_rank(platform, entry.platform)
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, entry)
        if best is None:
            available = ", ".join(seen) or "none"
            raise PullFailure(
                f"no manifest for {platform} in the index (available: {available})",
                cause=PullCause.UNSUPPORTED_PLATFORM,
                step=PullStep.MANIFEST,
                image=session.image,
            )
        return best[1]

    def _image_manifest(
        self, session: _Session, manifest: _Fetched
    ) -> tuple[Descriptor, tuple[Descriptor, ...]]:
        try:
            document = json.loads(manifest.body)
            if not isinstance(document, dict):
                raise _Malformed("the manifest is not a JSON object")
            config = _descriptor(document.get("config"), "config")
            raw_layers = document.get("layers", [])
            if not isinstance(raw_layers, list):
                raise _Malformed("layers must be an array")
            layers = tuple(_descriptor(item, f"layers[{i}]") for i, item in enumerate(raw_layers))
        except (_Malformed, ValueError) as exc:
            raise self._malformed(session, f"invalid image manifest: {exc}") from None
        if config.media_type not in CONFIG_TYPES:
            raise self._unsupported(
                session, f"the manifest is an artifact with config type '{config.media_type}', not an image"
            )
        for layer in layers:
            if layer.media_type not in LAYER_TYPES:
                raise self._unsupported(session, f"layer {layer.digest} has media type '{layer.media_type}'")
            if layer.size > self._max_layer_bytes:
                raise PullFailure(
                    f"layer {layer.digest} has {layer.size} bytes, over the limit of {self._max_layer_bytes}",
                    cause=PullCause.SIZE_LIMIT,
                    step=PullStep.MANIFEST,
                    image=session.image,
                )
        return config, layers

    def _check_config(self, session: _Session, config: bytes, check: bool, platform: Platform) -> Platform:
        try:
            document = json.loads(config)
        except ValueError:
            raise self._malformed(session, "the image config is not JSON", step=PullStep.BLOB) from None
        if not isinstance(document, dict):
            raise self._malformed(session, "the image config is not a JSON object", step=PullStep.BLOB)
        found = Platform.from_json(document)
        if found is None:
            return platform
        if check and _platform_rank(platform, found) is None:
            raise PullFailure(
                f"the image is for {found}, not {platform}",
                cause=PullCause.UNSUPPORTED_PLATFORM,
                step=PullStep.MANIFEST,
                image=session.image,
            )
        return found

    def _layers_of(self, session: _Session, resolved: ResolvedImage) -> tuple[Layer, ...]:
        rootfs = resolved.config_json().get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(resolved.layers):
            count = len(diff_ids) if isinstance(diff_ids, list) else 0
            raise self._malformed(
                session,
                f"the image config lists {count} diff_ids for {len(resolved.layers)} layers",
                step=PullStep.BLOB,
            )
        layers = []
        for descriptor, diff_id in zip(resolved.layers, diff_ids, strict=True):
            if not isinstance(diff_id, str) or not _DIGEST.fullmatch(diff_id):
                raise self._malformed(session, "the image config has an invalid diff_id", step=PullStep.BLOB)
            layers.append(Layer(descriptor.digest, descriptor.media_type, descriptor.size, diff_id))
        return tuple(layers)

    def _unsupported(self, session: _Session, detail: str) -> PullFailure:
        return PullFailure(
            detail, cause=PullCause.UNSUPPORTED_MEDIA_TYPE, step=PullStep.MANIFEST, image=session.image
        )

    def _malformed(
        self, session: _Session, detail: str, *, step: PullStep = PullStep.MANIFEST
    ) -> PullFailure:
        return PullFailure(detail, cause=PullCause.REGISTRY_ERROR, step=step, image=session.image)

    # -- manifests and blobs --------------------------------------------------------------------

    async def _manifest(
        self, session: _Session, locator: str, *, expected: Descriptor | None = None
    ) -> _Fetched:
        path = f"/v2/{session.reference.repository}/manifests/{locator}"
        response = await self._registry_get(session, PullStep.MANIFEST, path, {"Accept": MANIFEST_ACCEPT})
        url = _display_url(str(response.request.url))
        peer = _peer(response.request.url)
        try:
            if response.status_code != 200:
                raise await self._http_failure(session, response, PullStep.MANIFEST)
            limit = self._max_manifest_bytes
            body = await self._read(session, response, limit, PullStep.MANIFEST, what="manifest")
        finally:
            await response.aclose()

        def mismatch(detail: str) -> PullFailure:
            return PullFailure(
                detail,
                cause=PullCause.DIGEST_MISMATCH,
                step=PullStep.MANIFEST,
                image=session.image,
                peer=peer,
                url=url,
            )

        announced = response.headers.get("docker-content-digest")
        if (
            announced is not None
            and _digest_algorithm(announced) is not None
            and not _matches(body, announced)
        ):
            raise mismatch(f"the manifest does not match the Docker-Content-Digest {announced}")
        if ":" in locator:
            if not _matches(body, locator):
                raise mismatch(f"the manifest does not match the requested digest {locator}")
            digest = locator
        elif announced is not None and _digest_algorithm(announced) is not None:
            digest = announced
        else:
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if expected is not None and expected.size != len(body):
            raise mismatch(f"the manifest has {len(body)} bytes, the index says {expected.size}")
        media_type = _manifest_media_type(body, response.headers.get("content-type"))
        if media_type in DOCKER_SCHEMA1:
            raise self._unsupported(session, "Docker schema 1 manifests are not supported")
        if media_type not in IMAGE_MANIFEST_TYPES | INDEX_TYPES:
            raise self._unsupported(session, f"manifest media type '{media_type}' is not supported")
        if expected is not None and expected.media_type != media_type:
            raise self._unsupported(
                session, f"the manifest is a '{media_type}', the index says '{expected.media_type}'"
            )
        return _Fetched(digest, media_type, body)

    async def _small_blob(self, session: _Session, descriptor: Descriptor) -> bytes:
        """A blob read into memory (the config), verified against its descriptor."""
        if descriptor.size > self._max_config_bytes:
            raise PullFailure(
                f"blob {descriptor.digest} has {descriptor.size} bytes, over the limit of "
                f"{self._max_config_bytes}",
                cause=PullCause.SIZE_LIMIT,
                step=PullStep.BLOB,
                image=session.image,
            )
        if await self._blobs.stat(descriptor.digest) == descriptor.size:
            # Not leased yet (resolve takes no lease): a collection may remove it meanwhile.
            with contextlib.suppress(BlobNotFound):
                return await self._blobs.read_all(descriptor.digest)
        path = f"/v2/{session.reference.repository}/blobs/{descriptor.digest}"
        response = await self._registry_get(session, PullStep.BLOB, path, {"Accept-Encoding": "identity"})
        try:
            if response.status_code != 200:
                raise await self._http_failure(session, response, PullStep.BLOB)
            body = await self._read(
                session, response, descriptor.size, PullStep.BLOB, what="blob", exact=True
            )
        finally:
            await response.aclose()
        if len(body) != descriptor.size or not _matches(body, descriptor.digest):
            raise PullFailure(
                f"blob {descriptor.digest} does not match its descriptor",
                cause=PullCause.DIGEST_MISMATCH,
                step=PullStep.BLOB,
                image=session.image,
                peer=_peer(response.request.url),
                url=_display_url(str(response.request.url)),
            )
        return body

    async def _download(
        self, session: _Session, descriptor: Descriptor, progress: ProgressCallback | None
    ) -> None:
        """Stream one layer into the blob store unless it is there already."""
        digest, size = descriptor.digest, descriptor.size

        def report(completed: int, state: ProgressState) -> None:
            if progress is not None:
                progress(PullProgress(digest, descriptor.media_type, completed, size, state))

        if await self._blobs.stat(digest) is not None:
            report(size, ProgressState.PRESENT)
            return
        path = f"/v2/{session.reference.repository}/blobs/{digest}"
        algorithm, _, encoded = digest.partition(":")
        for attempt in range(self._max_retries + 1):
            ingest = f"pull-{algorithm}-{encoded[:32]}-{uuid.uuid4().hex[:12]}"
            await self._blobs.start_ingest(ingest)
            response: httpx.Response | None = None
            try:
                response = await self._registry_get(
                    session, PullStep.BLOB, path, {"Accept-Encoding": "identity"}
                )
                if response.status_code != 200:
                    raise await self._http_failure(session, response, PullStep.BLOB)
                announced = _content_length(response)
                if announced is not None and announced != size and "content-encoding" not in response.headers:
                    raise self._blob_mismatch(
                        session, response, f"the registry announced {announced} bytes for a {size}-byte blob"
                    )
                chunks = self._counted(session, response, descriptor, report)
                await self._blobs.append(ingest, chunks, offset=0)
                await self._blobs.commit(ingest, digest, size=size)
                report(size, ProgressState.DONE)
                return
            except (DigestMismatch, SizeMismatch):
                raise PullFailure(
                    f"blob {digest} does not match its digest",
                    cause=PullCause.DIGEST_MISMATCH,
                    step=PullStep.BLOB,
                    image=session.image,
                    peer=_peer(response.request.url) if response is not None else None,
                    url=_display_url(str(response.request.url)) if response is not None else None,
                ) from None
            except httpx.TransportError as exc:
                # The body broke off mid-stream (the connection itself was retried by _send).
                if attempt < self._max_retries:
                    await asyncio.sleep(self._backoff(attempt, None))
                    continue
                url = response.request.url if response is not None else httpx.URL(session.base + path)
                raise self._transport_failure(session, exc, PullStep.BLOB, url) from None
            finally:
                if response is not None:
                    await response.aclose()
                await self._blobs.abort(ingest)

    async def _counted(
        self,
        session: _Session,
        response: httpx.Response,
        descriptor: Descriptor,
        report: Callable[[int, ProgressState], None],
    ) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > descriptor.size:
                raise self._blob_mismatch(
                    session, response, f"the registry sent more than the {descriptor.size} bytes of the blob"
                )
            report(received, ProgressState.DOWNLOADING)
            yield chunk

    def _blob_mismatch(self, session: _Session, response: httpx.Response, detail: str) -> PullFailure:
        return PullFailure(
            detail,
            cause=PullCause.DIGEST_MISMATCH,
            step=PullStep.BLOB,
            image=session.image,
            status=response.status_code,
            peer=_peer(response.request.url),
            url=_display_url(str(response.request.url)),
        )

    async def _read(
        self,
        session: _Session,
        response: httpx.Response,
        limit: int,
        step: PullStep,
        *,
        what: str,
        exact: bool = False,
    ) -> bytes:
        """The whole body, at most ``limit`` bytes (more: ``size_limit``, or ``digest_mismatch``
        when ``exact``, i.e. the limit is the descriptor's size)."""

        def too_big() -> PullFailure:
            return PullFailure(
                f"the {what} is larger than {limit} bytes",
                cause=PullCause.DIGEST_MISMATCH if exact else PullCause.SIZE_LIMIT,
                step=step,
                image=session.image,
                status=response.status_code,
                peer=_peer(response.request.url),
                url=_display_url(str(response.request.url)),
            )

        announced = _content_length(response)
        if announced is not None and announced > limit and "content-encoding" not in response.headers:
            raise too_big()
        data = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    raise too_big()
        except httpx.TransportError as exc:
            raise self._transport_failure(session, exc, step, response.request.url) from None
        return bytes(data)

    # -- authentication -------------------------------------------------------------------------

    async def _registry_get(
        self, session: _Session, step: PullStep, path: str, headers: Mapping[str, str]
    ) -> httpx.Response:
        """GET a registry path with the session's authorization: authenticating first, renewing
        a token that is about to expire (long pulls outlive short-lived tokens), and answering
        one more challenge when a cached, expired or absent authorization is refused."""
        async with session.lock:  # parallel layer downloads authenticate once
            if not session.authenticated:
                await self._authenticate(session)
            elif session.stale() and session.challenges:
                await self._answer(session, session.challenges)
        url = session.base + path
        used = session.auth
        response = await self._send(session, step, "GET", url, headers=headers, authorization=used)
        if response.status_code != 401:
            return response
        # A cached token may have been revoked or expired early, and a registry that let us
        # into /v2/ anonymously may still want a token for the repository: answer once more.
        challenges = _parse_challenges(response.headers.get_list("www-authenticate"))
        expired = any(params.get("error") == "invalid_token" for _, params in challenges)
        renew = session.from_cache or used is None or session.stale() or expired
        if not renew or not any(scheme in ("bearer", "basic") for scheme, _ in challenges):
            return response
        await response.aclose()
        async with session.lock:
            if session.auth == used:  # not renewed by a parallel download meanwhile
                self._tokens.pop(session.key, None)
                await self._answer(session, challenges)
        return await self._send(session, step, "GET", url, headers=headers, authorization=session.auth)

    async def _authenticate(self, session: _Session) -> None:
        cached = self._tokens.get(session.key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            session.auth, session.expires_at = cached
            session.from_cache, session.authenticated = True, True
            return
        response = await self._send(session, PullStep.CHALLENGE, "GET", session.base + "/v2/", headers={})
        try:
            if response.status_code == 200:
                session.auth, session.from_cache, session.authenticated = None, False, True
                self._remember(session, None, 300.0)
                return
            if response.status_code != 401:
                raise await self._http_failure(session, response, PullStep.CHALLENGE)
            challenges = _parse_challenges(response.headers.get_list("www-authenticate"))
            if not any(scheme in ("bearer", "basic") for scheme, _ in challenges):
                raise await self._http_failure(
                    session, response, PullStep.CHALLENGE, detail="the registry sent no usable challenge"
                )
        finally:
            await response.aclose()
        await self._answer(session, challenges)

    async def _answer(self, session: _Session, challenges: list[tuple[str, dict[str, str]]]) -> None:
        """Obtain the authorization a challenge asks for and remember it."""
        bearer = next((params for scheme, params in challenges if scheme == "bearer"), None)
        credential = session.credential
        if bearer is not None:
            token, lifetime = await self._token(session, bearer)
            authorization: str | None = f"Bearer {token}"
        elif isinstance(credential, BasicCredential):
            authorization, lifetime = _basic(credential), 300.0
        else:
            raise PullFailure(
                "the registry asks for a user name and password",
                cause=PullCause.UNAUTHORIZED,
                step=PullStep.CHALLENGE,
                image=session.image,
                status=401,
            )
        session.auth, session.from_cache, session.authenticated = authorization, False, True
        session.challenges = challenges
        session.expires_at = time.monotonic() + lifetime
        self._remember(session, authorization, lifetime)

    def _remember(self, session: _Session, authorization: str | None, lifetime: float) -> None:
        now = time.monotonic()
        if len(self._tokens) >= _MAX_CACHED_TOKENS:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            while len(self._tokens) >= _MAX_CACHED_TOKENS:
                self._tokens.pop(next(iter(self._tokens)))
        self._tokens[session.key] = (authorization, now + lifetime)

    async def _token(self, session: _Session, challenge: Mapping[str, str]) -> tuple[str, float]:
        """An access token from the challenge's realm; ``(token, seconds to keep it)``."""
        realm = challenge.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise PullFailure(
                f"the Bearer challenge names no usable realm ('{_display_url(realm)[:200]}')",
                cause=PullCause.REGISTRY_ERROR,
                step=PullStep.CHALLENGE,
                image=session.image,
                status=401,
            )
        if parts.scheme == "http":
            routed, _ = self._router.route(parts.netloc)
            if not (self._is_insecure(parts.netloc) or self._is_insecure(routed)):
                raise PullFailure(
                    f"the token realm {_display_url(realm)} is not HTTPS",
                    cause=PullCause.REGISTRY_ERROR,
                    step=PullStep.CHALLENGE,
                    image=session.image,
                )
        service = challenge.get("service", "")
        query = {"scope": session.scope}
        if service:
            query["service"] = service
        credential = session.credential
        if isinstance(credential, EntraExchange):
            entra = await self._entra_token(session, credential)
            exchange = urlunsplit((parts.scheme, parts.netloc, "/oauth2/exchange", "", ""))
            answer = await self._token_request(
                session,
                "POST",
                exchange,
                data={"grant_type": "access_token", "service": service, "access_token": entra},
            )
            refresh = answer.get("refresh_token")
            if not isinstance(refresh, str) or not refresh:
                raise self._malformed(
                    session, "the token exchange returned no refresh_token", step=PullStep.TOKEN
                )
            answer = await self._token_request(
                session,
                "POST",
                realm,
                data={
                    "grant_type": "refresh_token",
                    "service": service,
                    "scope": session.scope,
                    "refresh_token": refresh,
                },
            )
        elif isinstance(credential, BasicCredential):
            answer = await self._token_request(
                session, "GET", realm, params=query, headers={"Authorization": _basic(credential)}
            )
        else:
            answer = await self._token_request(session, "GET", realm, params=query)
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._malformed(session, "the token service returned no token", step=PullStep.TOKEN)
        expires_in = answer.get("expires_in")
        seconds = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        return token, min(seconds, 3600.0) * 0.8

    async def _entra_token(self, session: _Session, credential: EntraExchange) -> str:
        try:
            token = await credential.get_token()
        except MoorageError as exc:
            raise PullFailure(
                f"no Entra token for the registry: {exc.message}",
                cause=PullCause.UNAUTHORIZED,
                step=PullStep.TOKEN,
                image=session.image,
            ) from exc
        except Exception as exc:  # the caller's token source: translate whatever it raises
            raise PullFailure(
                f"no Entra token for the registry: {type(exc).__name__}: {_reason(exc)}",
                cause=PullCause.UNAUTHORIZED,
                step=PullStep.TOKEN,
                image=session.image,
            ) from exc
        if not token:
            raise PullFailure(
                "no Entra token for the registry",
                cause=PullCause.UNAUTHORIZED,
                step=PullStep.TOKEN,
                image=session.image,
            )
        return token

    async def _token_request(
        self,
        session: _Session,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self._send(
            session, PullStep.TOKEN, method, url, headers=headers or {}, params=params, data=data
        )
        try:
            if response.status_code != 200:
                raise await self._http_failure(session, response, PullStep.TOKEN)
            body = await self._read(session, response, _TOKEN_BODY_LIMIT, PullStep.TOKEN, what="token answer")
        finally:
            await response.aclose()
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self._malformed(
                session, "the token service answered with something other than JSON", step=PullStep.TOKEN
            )
        return answer

    # -- HTTP -----------------------------------------------------------------------------------

    def _client(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        key = id(transport) if transport is not None else 0
        found = self._clients.get(key)
        if found is not None:
            return found[1]
        limits = httpx.Limits(
            max_connections=max(self._parallelism * 4, 16),
            max_keepalive_connections=max(self._parallelism * 2, 8),
        )
        if transport is None:
            client = httpx.AsyncClient(
                verify=self._verify, timeout=self._timeout, limits=limits, trust_env=False
            )
        else:
            client = httpx.AsyncClient(transport=transport, timeout=self._timeout, trust_env=False)
        self._clients[key] = (transport, client)
        return client

    async def _send(
        self,
        session: _Session,
        step: PullStep,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        authorization: str | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with routing, bounded retries of transient failures, and redirects (GET only;
        ``authorization`` is never sent to another origin). Returns a streamed response the
        caller closes; raises :class:`PullFailure` for transport failures."""
        origin = _origin(url)
        target = url
        attempt = 0
        redirects = 0
        while True:
            parts = urlsplit(target)
            routed, transport = self._router.route(parts.netloc)
            routed_url = urlunsplit((parts.scheme, routed, parts.path, parts.query, parts.fragment))
            request_headers = dict(headers)
            if authorization is not None and _origin(target) == origin:
                request_headers["Authorization"] = authorization
            client = self._client(transport)
            request = client.build_request(
                method,
                routed_url,
                headers=request_headers,
                params=params if target == url else None,
                data=data,
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                if _retryable_transport(exc) and attempt < self._max_retries:
                    await asyncio.sleep(self._backoff(attempt, None))
                    attempt += 1
                    continue
                raise self._transport_failure(session, exc, step, request.url) from None
            if response.status_code in _RETRY_STATUSES and attempt < self._max_retries:
                delay = self._backoff(attempt, response.headers.get("retry-after"))
                await response.aclose()
                await asyncio.sleep(delay)
                attempt += 1
                continue
            location = response.headers.get("location")
            if response.status_code in (301, 302, 303, 307, 308) and method == "GET" and location:
                await response.aclose()
                redirects += 1
                if redirects > _MAX_REDIRECTS:
                    raise PullFailure(
                        f"more than {_MAX_REDIRECTS} redirects",
                        cause=PullCause.REGISTRY_ERROR,
                        step=step,
                        image=session.image,
                        status=response.status_code,
                        peer=_peer(request.url),
                        url=_display_url(str(request.url)),
                    )
                target = urljoin(target, location)
                continue
            return response

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self._backoff_s * (2**attempt), self._max_backoff_s)
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after.strip()), self._max_backoff_s))
        return float(delay)

    def _transport_failure(
        self, session: _Session, exc: httpx.TransportError, step: PullStep, url: httpx.URL
    ) -> PullFailure:
        peer = _peer(url)
        cause, failed_step = PullCause.UNREACHABLE, step
        tls = _find_cause(exc, ssl.SSLError)
        if tls is not None:
            verify_message = getattr(tls, "verify_message", None)
            if verify_message:
                reason = f"certificate verify failed: {verify_message}"
            else:
                reason = getattr(tls, "reason", None) or _reason(tls)
            cause, failed_step, detail = PullCause.TLS, PullStep.TLS, f"TLS with {peer} failed: {reason}"
        elif isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            failed_step = PullStep.CONNECT
            if _find_cause(exc, socket.gaierror) is not None:
                detail = f"the name of {peer} does not resolve"
            elif isinstance(exc, httpx.ConnectTimeout):
                detail = f"connecting to {peer} timed out"
            else:
                detail = f"cannot connect to {peer}: {_reason(exc)}"
        elif isinstance(exc, httpx.TimeoutException):
            detail = f"{peer} did not answer in time"
        else:
            detail = f"the connection to {peer} failed: {_reason(exc)}"
        return PullFailure(
            detail, cause=cause, step=failed_step, image=session.image, peer=peer, url=_display_url(str(url))
        )

    async def _http_failure(
        self, session: _Session, response: httpx.Response, step: PullStep, *, detail: str | None = None
    ) -> PullFailure:
        """A failure that keeps what the registry said in an unexpected answer."""
        body = b""
        with contextlib.suppress(httpx.HTTPError):
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _ERROR_BODY_LIMIT:
                    break
        code, message = _registry_error(body)
        status = response.status_code
        cause = _cause_for(status, code, step)
        said = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        return PullFailure(
            f"{detail}; {said}" if detail else said,
            cause=cause,
            step=step,
            image=session.image,
            status=status,
            registry_code=code,
            registry_message=message,
            peer=_peer(response.request.url),
            url=_display_url(str(response.request.url)),
        )


# -- helpers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fetched:
    digest: str
    media_type: str
    body: bytes


class _Malformed(ValueError):
    pass


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_CODE_CAUSES = {
    "NAME_UNKNOWN": PullCause.NAME_UNKNOWN,
    "MANIFEST_UNKNOWN": PullCause.MANIFEST_UNKNOWN,
    "DENIED": PullCause.DENIED,
    "UNAUTHORIZED": PullCause.UNAUTHORIZED,
    "TOOMANYREQUESTS": PullCause.TOO_MANY_REQUESTS,
}
_OAUTH_REFUSALS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


def _cause_for(status: int, code: str | None, step: PullStep) -> PullCause:
    if code is not None and code.upper() in _CODE_CAUSES:
        return _CODE_CAUSES[code.upper()]
    if status == 401 or (step is PullStep.TOKEN and code in _OAUTH_REFUSALS):
        return PullCause.UNAUTHORIZED
    if status == 403:
        return PullCause.DENIED
    if status == 429:
        return PullCause.TOO_MANY_REQUESTS
    if status == 404 and step is PullStep.MANIFEST:
        return PullCause.MANIFEST_UNKNOWN
    return PullCause.REGISTRY_ERROR


def _registry_error(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` from an OCI ``{"errors": [...]}``, OAuth2 ``{"error", ...}`` or ARM
    ``{"error": {code, message}}`` body, else the body's text as the message."""
    try:
        document = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return None, _clip(text) if text else None
    code: Any = None
    message: Any = None
    if isinstance(document, dict):
        errors = document.get("errors")
        error = document.get("error")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code, message = errors[0].get("code"), errors[0].get("message")
        elif isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
        elif isinstance(error, str):
            code, message = error, document.get("error_description")
        else:
            message = document.get("details") or document.get("message")
    return (
        str(code) if code is not None else None,
        _clip(str(message)) if message is not None else None,
    )


def _clip(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_challenges(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    """RFC 7235 ``WWW-Authenticate`` values → ``[(scheme lower-cased, params)]``."""
    found: list[tuple[str, dict[str, str]]] = []
    for value in values:
        position = 0
        while position < len(value):
            match = _SCHEME.match(value, position)
            if match is None:
                break
            scheme = match.group(1).lower()
            position = match.end()
            params: dict[str, str] = {}
            while True:
                param = _PARAM.match(value, position)
                if param is None:
                    break
                raw = param.group(2)
                if raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                params[param.group(1).lower()] = raw
                position = param.end()
            found.append((scheme, params))
    return found


_TOKEN_CHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"[\s,]*({_TOKEN_CHARS})(?:\s+|$|(?=,))")
_PARAM = re.compile(rf'[\s,]*({_TOKEN_CHARS})\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')


def _basic(credential: BasicCredential) -> str:
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _Malformed(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _Malformed(f"{where}.mediaType is missing")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise _Malformed(f"{where}.digest is not a sha256 or sha512 digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _Malformed(f"{where}.size must be a non-negative integer")
    platform = Platform.from_json(value.get("platform"))
    raw_annotations = value.get("annotations")
    annotations = (
        {str(k): str(v) for k, v in raw_annotations.items()} if isinstance(raw_annotations, dict) else {}
    )
    return Descriptor(media_type, digest, size, platform, annotations)


def _parse_index(body: bytes) -> list[Descriptor]:
    try:
        document = json.loads(body)
    except ValueError:
        raise _Malformed("the index is not JSON") from None
    entries = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise _Malformed("manifests must be an array")
    return [_descriptor(entry, f"manifests[{i}]") for i, entry in enumerate(entries)]


def _is_attestation(entry: Descriptor) -> bool:
    if entry.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
        return True
    platform = entry.platform
    return platform is not None and "unknown" in (platform.os, platform.architecture)


def _manifest_media_type(body: bytes, content_type: str | None) -> str:
    """The document's own ``mediaType``, else the ``Content-Type``, else inferred from shape."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        declared = document.get("mediaType")
        if isinstance(declared, str) and declared:
            return declared
    header = (content_type or "").split(";")[0].strip().lower()
    if header and header not in ("application/json", "application/octet-stream", "text/plain"):
        return header
    if isinstance(document, dict):
        if document.get("schemaVersion") == 1:
            return next(iter(sorted(DOCKER_SCHEMA1)))
        if "manifests" in document:
            return OCI_INDEX
        if "config" in document and "layers" in document:
            return OCI_MANIFEST
    return header or "application/octet-stream"


def _digest_algorithm(digest: str) -> str | None:
    algorithm, _, encoded = digest.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if algorithm in lengths and len(encoded) == lengths[algorithm]:
        return algorithm
    return None


def _matches(data: bytes, digest: str) -> bool:
    algorithm = _digest_algorithm(digest)
    if algorithm is None:
        return False
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}" == digest


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _display_url(url: str) -> str:
    """The URL without query, fragment or user info (signatures and tokens live there)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _peer(url: httpx.URL) -> str:
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _find_cause(exc: BaseException, kind: type[_E]) -> _E | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return _clip(text, 300) if text else type(exc).__name__


def _retryable_transport(exc: httpx.TransportError) -> bool:
    """Connection failures other than TLS: nothing reached the server, or a pooled connection
    was closed under us before an answer."""
    if _find_cause(exc, ssl.SSLError) is not None:
        return False
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.RemoteProtocolError)


async def _all_or_nothing(work: list[Coroutine[Any, Any, None]], parallelism: int) -> None:
    """Run ``work`` with at most ``parallelism`` at once; on the first failure cancel the rest
    and raise that failure (not an ``ExceptionGroup``)."""
    if not work:
        return
    gate = asyncio.Semaphore(parallelism)

    async def limited(job: Coroutine[Any, Any, None]) -> None:
        async with gate:
            await job

    tasks = [asyncio.ensure_future(limited(job)) for job in work]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next(
            (t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None
        )
        if failed is not None:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            error = failed.exception()
            assert error is not None  # noqa: S101 - selected for having one
            raise error
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# -- layers ---------------------------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_SIZE = MIB


class _Prefixed(io.RawIOBase):
    """A raw stream: ``prefix`` then the rest of ``source`` (undoes a sniff on a pipe)."""

    def __init__(self, prefix: bytes, source: IO[bytes]) -> None:
        self._prefix = prefix
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._source.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        return len(data)


class _LayerStream(io.RawIOBase):
    """The decompressed tar stream; closing it closes what :func:`open_layer` opened."""

    def __init__(self, decoder: IO[bytes], owned: list[IO[bytes]]) -> None:
        self._decoder = decoder
        self._owned = owned

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._decoder.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._decoder.close()
            finally:
                for stream in self._owned:
                    stream.close()
        super().close()


def open_layer(source: str | os.PathLike[str] | IO[bytes], media_type: str) -> io.BufferedReader:
    """A readable stream of the uncompressed tar of a stored layer.

    ``source`` is a path or a binary stream positioned at the layer's start (a stream is left
    open when the returned one is closed; a path is opened and closed here). The decoder is
    chosen by the content's magic bytes — gzip (streamed through zlib), zstd (``zstandard``,
    across frames) or none — because Docker's ``…tar.gzip`` type is also used for uncompressed
    layers in the wild; ``media_type`` must still be a layer type, else
    :class:`UnsupportedLayer`. Corrupt data raises from ``read`` (``gzip.BadGzipFile``,
    ``EOFError``, ``zstandard.ZstdError``).
    """
    if media_type not in LAYER_TYPES:
        raise UnsupportedLayer(f"'{media_type}' is not a layer media type")
    owned: list[IO[bytes]] = []
    if isinstance(source, str | os.PathLike):
        raw: IO[bytes] = Path(source).open("rb")  # noqa: SIM115 - closed by the returned stream
        owned.append(raw)
    else:
        raw = source
    try:
        prefix = _read_exactly(raw, 4)
        stream: IO[bytes] = io.BufferedReader(_Prefixed(prefix, raw), buffer_size=_READ_SIZE)
        owned.insert(0, stream)
        decoder: IO[bytes]
        if prefix.startswith(GZIP_MAGIC):
            decoder = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        elif prefix == ZSTD_MAGIC:
            decoder = zstandard.ZstdDecompressor().stream_reader(
                stream, read_size=_READ_SIZE, read_across_frames=True, closefd=False
            )
        else:
            decoder = stream
    except BaseException:
        for opened in owned:
            opened.close()
        raise
    return io.BufferedReader(_LayerStream(decoder, owned), buffer_size=_READ_SIZE)


def _read_exactly(stream: IO[bytes], count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


__all__ = [
    "ANONYMOUS",
    "DEFAULT_PLATFORM",
    "LAYER_TYPES",
    "Anonymous",
    "BasicCredential",
    "Credential",
    "Descriptor",
    "DirectRouter",
    "EntraExchange",
    "ImageSource",
    "Layer",
    "Platform",
    "ProgressState",
    "PullCause",
    "PullFailure",
    "PullProgress",
    "PullStep",
    "PulledImage",
    "ResolvedImage",
    "TransportRouter",
    "UnsupportedLayer",
    "open_layer",
]
