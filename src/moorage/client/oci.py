"""An OCI distribution client for the command line: push and pull images, with ACR's
authentication.

:class:`RegistryClient` speaks the distribution API over HTTPS to one registry host:

* **Authentication** — the first request to a repository goes out without credentials; a
  ``401`` names the scheme. ``Bearer`` challenges are answered at the challenge's ``realm``
  for ``repository:<repo>:<actions>``: anonymously, with Basic credentials (``GET <realm>``,
  distribution's token flow: ACR admin user, service principal, scope-map token), or with an
  Entra access token that ``POST /oauth2/exchange`` turns into an ACR refresh token and
  ``POST <realm>`` (``grant_type=refresh_token``) into an access token — exactly what
  ``az acr login`` does. ``Basic`` challenges get the Basic credential directly. Access tokens
  are kept per repository until shortly before they expire; a refused token is renewed once.
* **Blobs** — ``HEAD`` skips blobs the repository has; uploads start with ``POST`` and finish
  with one monolithic ``PUT`` or, for big blobs, a series of ``PATCH`` chunks (``Content-Range``)
  and an empty ``PUT``. Bodies stream from their source and are hashed while they stream: a
  source that does not match its digest fails before the upload is completed. Downloads stream
  to a file next to their destination, are verified against digest and size, and only then
  renamed into place. Memory stays flat whatever a layer's size.
* **Manifests** — content negotiation for OCI and Docker manifests and indexes; every manifest
  fetched is checked against the digest asked for and the ``Docker-Content-Digest`` announced;
  indexes are narrowed to one :class:`Platform`.
* **Failures** — :class:`RegistryError` (an :class:`~moorage.client.ApiError`) keeps the HTTP
  status and the registry's own code and message (``UNAUTHORIZED``, ``DENIED``,
  ``MANIFEST_UNKNOWN``...); connection and TLS failures use the codes ``RegistryUnreachable``
  and ``TlsFailure``. Credentials and tokens never appear in messages. Transient conditions
  (connection failures, HTTP 429/502/503/504) are retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from moorage.client import ApiError
from moorage.core.errors import InvalidArgument
from moorage.core.platform import Platform

# -- media types ----------------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_MANIFEST_TYPES
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
#: Docker's marker of attestation entries in an index (never selected as a platform).
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"

MIB = 1024 * 1024
READ_SIZE = MIB
MAX_MANIFEST_BYTES = 4 * MIB
MAX_CONFIG_BYTES = 8 * MIB
#: Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks of CHUNK_SIZE.
MONOLITHIC_LIMIT = 64 * MIB
CHUNK_SIZE = 16 * MIB
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ERROR_BODY_LIMIT = 64 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


# -- errors ---------------------------------------------------------------------------------------


class RegistryError(ApiError):
    """A registry refused or failed a request. ``code`` is the registry's OCI code when it sent
    one (``UNAUTHORIZED``, ``DENIED``, ``NAME_UNKNOWN``...), else a code of ours; ``message``
    says what was being done and what the registry said."""


class ContentMismatch(RegistryError):
    """Content that does not match its digest or size (from the registry or a local source)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "DIGEST_INVALID", message)


class NoMatchingPlatform(RegistryError):
    def __init__(self, message: str) -> None:
        super().__init__(0, "NoMatchingPlatform", message)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(digest: str) -> str:
    """``digest`` if it is a sha256/sha512 digest; :class:`InvalidArgument` otherwise."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"'{digest[:150]}' is not a valid digest", code="DIGEST_INVALID")
    return digest


def hasher_for(digest: str) -> Any:
    """A fresh hash object of ``digest``'s algorithm."""
    return hashlib.new(check_digest(digest).partition(":")[0])


# -- platforms ------------------------------------------------------------------------------------


# -- documents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        """A descriptor from its JSON form; :class:`InvalidArgument` (``MANIFEST_INVALID``)
        naming ``where`` when it is malformed."""
        if not isinstance(value, dict):
            raise InvalidArgument(f"{where} is not a descriptor object", code="MANIFEST_INVALID")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidArgument(f"{where} has no mediaType", code="MANIFEST_INVALID")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise InvalidArgument(f"{where} has no valid digest", code="MANIFEST_INVALID")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"{where} has no valid size", code="MANIFEST_INVALID")
        raw = value.get("annotations")
        annotations = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        return cls(media_type, digest, size, Platform.from_json(value.get("platform")), annotations)

    @property
    def is_attestation(self) -> bool:
        return ATTESTATION_ANNOTATION in self.annotations or (
            self.platform is not None and self.platform.os == "unknown"
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform is not None:
            platform: dict[str, str] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                platform["variant"] = self.platform.variant
            body["platform"] = platform
        if self.annotations:
            body["annotations"] = dict(self.annotations)
        return body


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as its bytes are (the bytes are what the digest names)."""

    digest: str
    media_type: str
    body: bytes

    @classmethod
    def of(cls, body: bytes, media_type: str | None = None) -> Manifest:
        """``body`` with its sha256 digest and its media type (the document's own ``mediaType``
        unless given); :class:`InvalidArgument` (``MANIFEST_INVALID``) when it is no manifest."""
        document = _json_object(body, "the manifest")
        declared = document.get("mediaType")
        kind = media_type or (declared if isinstance(declared, str) else None)
        if kind is None:
            # OCI allows an omitted mediaType: an index has "manifests", an image "config".
            kind = OCI_INDEX if "manifests" in document else OCI_MANIFEST
        if kind not in MANIFEST_TYPES:
            raise InvalidArgument(f"'{kind}' is not a manifest media type", code="MANIFEST_INVALID")
        return cls(digest_of(body), kind, body)

    def json(self) -> dict[str, Any]:
        return _json_object(self.body, f"manifest {self.digest}")

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def entries(self) -> list[Descriptor]:
        """An index's ``manifests``."""
        items = self.json().get("manifests")
        if not isinstance(items, list):
            raise InvalidArgument(f"index {self.digest} has no manifests array", code="MANIFEST_INVALID")
        return [Descriptor.from_json(item, f"manifests[{i}]") for i, item in enumerate(items)]

    def config(self) -> Descriptor:
        return Descriptor.from_json(self.json().get("config"), f"the config of manifest {self.digest}")

    def layers(self) -> list[Descriptor]:
        items = self.json().get("layers", [])
        if not isinstance(items, list):
            raise InvalidArgument(f"manifest {self.digest} has no layers array", code="MANIFEST_INVALID")
        return [Descriptor.from_json(item, f"layers[{i}]") for i, item in enumerate(items)]

    def descriptor(self, **extra: Any) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.body), **extra)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        raise InvalidArgument(f"{what} is not JSON", code="MANIFEST_INVALID") from None
    if not isinstance(document, dict):
        raise InvalidArgument(f"{what} is not a JSON object", code="MANIFEST_INVALID")
    return document


def select_platform(index: Manifest, platform: Platform) -> Descriptor:
    """The image manifest entry of ``index`` for ``platform`` (attestations are skipped);
    :class:`NoMatchingPlatform` naming what the index has."""
    seen: list[str] = []
    for entry in index.entries():
        if entry.platform is None or entry.is_attestation or entry.media_type not in IMAGE_MANIFEST_TYPES:
            continue
        seen.append(str(entry.platform))
        if platform.matches(entry.platform):
            return entry
    available = ", ".join(seen) or "none"
    raise NoMatchingPlatform(f"the image has no manifest for {platform} (available: {available})")


def image_platforms(index: Manifest) -> list[Descriptor]:
    """The entries of an index that name a platform (attestations left out)."""
    return [e for e in index.entries() if e.platform is not None and not e.is_attestation]


# -- what a push sends ----------------------------------------------------------------------------


class BlobSource(Protocol):
    """Local content to upload: ``open()`` yields a stream of exactly ``size`` bytes that
    should hash to ``digest`` (it is checked while uploading); it may be opened again."""

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def media_type(self) -> str: ...

    def open(self) -> contextlib.AbstractContextManager[IO[bytes]]: ...


@dataclass(frozen=True)
class ImageBundle:
    """Everything a push sends: ``top`` is what the tag names; ``children`` are the manifests
    an index lists (pushed by digest first); ``blobs`` holds every config and layer by digest."""

    top: Manifest
    children: tuple[Manifest, ...]
    blobs: Mapping[str, BlobSource]

    def manifests(self) -> list[Manifest]:
        return [*self.children, self.top]


# -- progress -------------------------------------------------------------------------------------


class Phase(StrEnum):
    START = "start"  # transfer begins (total known)
    PROGRESS = "progress"  # ``completed`` bytes so far
    DONE = "done"  # transferred and verified
    EXISTS = "exists"  # already there: nothing transferred


@dataclass(frozen=True)
class Progress:
    digest: str
    media_type: str
    phase: Phase
    completed: int
    total: int


ProgressCallback = Callable[[Progress], None]


def _no_progress(_event: Progress) -> None:
    return None


# -- credentials ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anonymous:
    """No credentials: anonymous tokens where the registry hands them out."""


@dataclass(frozen=True)
class BasicCredential:
    """A user name and password: ACR admin user, service principal (appId + secret), a
    repository-scoped token, or any registry's user."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, eq=False)
class EntraExchange:
    """An Entra principal: ``get_token`` returns an Entra access token (audience ARM) that the
    registry exchanges for its own refresh token (``az acr login``)."""

    get_token: Callable[[], Awaitable[str]] = field(repr=False)


Credential = Anonymous | BasicCredential | EntraExchange


def _basic(credential: BasicCredential) -> str:
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


_SCHEME = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?=\s|$|,)")
_PARAM = re.compile(r'\s*,?\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)')


def parse_challenges(values: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """RFC 7235 ``WWW-Authenticate`` values → ``[(scheme lower-cased, params)]``."""
    found: list[tuple[str, dict[str, str]]] = []
    for value in values:
        position = 0
        while position < len(value):
            match = _SCHEME.match(value, position)
            if match is None:
                break
            position = match.end()
            params: dict[str, str] = {}
            while (param := _PARAM.match(value, position)) is not None:
                raw = param.group(2)
                if raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                params[param.group(1).lower()] = raw
                position = param.end()
            found.append((match.group(1).lower(), params))
    return found


# -- the client -----------------------------------------------------------------------------------


@dataclass
class _Auth:
    """The ``Authorization`` in force for one repository (``None``: none needed) and until when."""

    value: str | None = None
    expires_at: float = 0.0
    challenges: list[tuple[str, dict[str, str]]] | None = None  # what ``value`` answered
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _registry_said(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` from an OCI ``{"errors": [...]}``, OAuth2 or ARM error body."""
    try:
        document = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return None, text[:500] or None
    if not isinstance(document, dict):
        return None, None
    errors, error = document.get("errors"), document.get("error")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return _text(errors[0].get("code")), _text(errors[0].get("message"))
    if isinstance(error, dict):
        return _text(error.get("code")), _text(error.get("message"))
    if isinstance(error, str):
        return error, _text(document.get("error_description"))
    return None, _text(document.get("message"))


def _text(value: Any) -> str | None:
    return str(value)[:1000] if value is not None else None


def _display(url: httpx.URL | str) -> str:
    """A URL without its query (upload locations and redirects may carry signatures)."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class RegistryClient:
    """One registry host (``host[:port]``). ``actions`` are what tokens are asked for
    (``("pull",)`` or ``("pull", "push")``). Use as an async context manager.

    Blobs larger than ``monolithic_limit`` bytes are uploaded in ``chunk_size`` chunks.
    """

    def __init__(
        self,
        host: str,
        credential: Credential,
        *,
        actions: Sequence[str] = ("pull",),
        verify: ssl.SSLContext | bool = True,
        plain_http: bool = False,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        monolithic_limit: int = MONOLITHIC_LIMIT,
        chunk_size: int = CHUNK_SIZE,
        max_retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        if chunk_size < 1 or monolithic_limit < 0:
            raise InvalidArgument("chunk sizes must be positive", code="InvalidTransferSettings")
        self.host = host
        self.credential = credential
        self._actions = ",".join(actions)
        self._base = f"{'http' if plain_http else 'https'}://{host}"
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            trust_env=False,
            # Blobs are digested as sent: no transparent re-encoding of bodies.
            headers={"Accept-Encoding": "identity"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )
        self._monolithic_limit = monolithic_limit
        self._chunk_size = chunk_size
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._auth: dict[str, _Auth] = {}
        self._refresh_token: str | None = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    # -- manifests ------------------------------------------------------------------------------

    async def get_manifest(
        self, repository: str, locator: str, *, expected: Descriptor | None = None
    ) -> Manifest:
        """The manifest ``locator`` (tag or digest) names, verified against the digest asked
        for, the announced ``Docker-Content-Digest`` and ``expected`` (size, media type)."""
        path = f"/v2/{repository}/manifests/{locator}"
        async with self._stream("GET", path, repository, headers={"Accept": MANIFEST_ACCEPT}) as response:
            if response.status_code != 200:
                raise await self._failure(response, f"getting manifest '{locator}' of '{repository}'")
            body = await _read_limited(response, MAX_MANIFEST_BYTES, "manifest")
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            announced = response.headers.get("docker-content-digest")
        try:
            document = _json_object(body, "the manifest")
        except InvalidArgument as exc:
            raise RegistryError(0, "MANIFEST_INVALID", f"{repository}:{locator}: {exc.message}") from None
        declared = document.get("mediaType")
        media_type = declared if isinstance(declared, str) and declared else content_type
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(
                0, "UnsupportedMediaType", f"'{repository}:{locator}' is a '{media_type}', not an image"
            )
        for digest in (locator if _DIGEST.fullmatch(locator) else None, announced):
            if digest and _DIGEST.fullmatch(digest) and digest_of(body, digest.partition(":")[0]) != digest:
                raise ContentMismatch(f"the manifest of '{repository}:{locator}' does not match {digest}")
        if _DIGEST.fullmatch(locator):
            digest = locator
        elif announced and _DIGEST.fullmatch(announced):
            digest = announced
        else:
            digest = digest_of(body)
        if expected is not None and (expected.size != len(body) or expected.digest != digest):
            raise ContentMismatch(f"the manifest {digest} does not match the index entry {expected.digest}")
        return Manifest(digest, media_type, body)

    async def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """PUT ``manifest`` as ``reference`` (a tag or its digest); returns its digest."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Content-Type": manifest.media_type}
        async with self._stream(
            "PUT", path, repository, headers=headers, content=lambda: _single(manifest.body)
        ) as response:
            if response.status_code not in (200, 201):
                raise await self._failure(response, f"pushing manifest '{repository}:{reference}'")
            announced = response.headers.get("docker-content-digest")
        if announced and announced != manifest.digest:
            raise ContentMismatch(f"the registry stored {announced} for manifest {manifest.digest}")
        return manifest.digest

    # -- blobs ----------------------------------------------------------------------------------

    async def blob_exists(self, repository: str, digest: str) -> bool:
        async with self._stream("HEAD", f"/v2/{repository}/blobs/{digest}", repository) as response:
            if response.status_code == 200:
                return True
            if response.status_code == 404:
                return False
            raise await self._failure(response, f"checking blob {digest} in '{repository}'")

    async def read_blob(
        self, repository: str, descriptor: Descriptor, limit: int = MAX_CONFIG_BYTES
    ) -> bytes:
        """A small blob (a config) in memory, verified against ``descriptor``."""
        if descriptor.size > limit:
            raise RegistryError(0, "SizeLimit", f"blob {descriptor.digest} is over {limit} bytes")
        path = f"/v2/{repository}/blobs/{descriptor.digest}"
        async with self._stream("GET", path, repository) as response:
            if response.status_code != 200:
                raise await self._failure(response, f"getting blob {descriptor.digest} of '{repository}'")
            body = await _read_limited(response, descriptor.size, f"blob {descriptor.digest}")
        if (
            len(body) != descriptor.size
            or digest_of(body, descriptor.digest.partition(":")[0]) != descriptor.digest
        ):
            raise ContentMismatch(
                f"blob {descriptor.digest} from '{repository}' does not match its descriptor"
            )
        return body

    async def download_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        destination: Path,
        progress: ProgressCallback = _no_progress,
    ) -> None:
        """Stream a blob to ``destination``: written beside it, verified against digest and
        size, fsynced and renamed into place (a failed download leaves nothing behind)."""
        digest, size = check_digest(descriptor.digest), descriptor.size
        partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
        path = f"/v2/{repository}/blobs/{digest}"
        hasher = hasher_for(digest)
        received = 0
        progress(Progress(digest, descriptor.media_type, Phase.START, 0, size))
        try:
            async with self._stream("GET", path, repository) as response:
                if response.status_code != 200:
                    raise await self._failure(response, f"getting blob {digest} of '{repository}'")
                with partial.open("wb") as out:
                    async for chunk in response.aiter_raw(READ_SIZE):
                        received += len(chunk)
                        if received > size:
                            raise ContentMismatch(f"blob {digest} is larger than its {size} bytes")
                        hasher.update(chunk)
                        out.write(chunk)
                        progress(Progress(digest, descriptor.media_type, Phase.PROGRESS, received, size))
                    out.flush()
                    os.fsync(out.fileno())
            if received != size or f"{hasher.name}:{hasher.hexdigest()}" != digest:
                raise ContentMismatch(f"blob {digest} from '{repository}' does not match its digest")
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)
        progress(Progress(digest, descriptor.media_type, Phase.DONE, size, size))

    async def upload_blob(
        self, repository: str, source: BlobSource, progress: ProgressCallback = _no_progress
    ) -> None:
        """Upload ``source`` (POST, then one PUT or PATCH chunks and a PUT). The stream is hashed
        as it is sent: a mismatch with ``source.digest`` aborts before the upload completes."""
        digest, size = check_digest(source.digest), source.size
        progress(Progress(digest, source.media_type, Phase.START, 0, size))
        async with self._stream("POST", f"/v2/{repository}/blobs/uploads/", repository) as response:
            if response.status_code != 202 or "location" not in response.headers:
                raise await self._failure(response, f"starting the upload of {digest} to '{repository}'")
            location = response.url.join(response.headers["location"])
        sent = _Sent(source, progress)
        with source.open() as stream:
            if size <= self._monolithic_limit:
                location = await self._send_part(repository, location, stream, sent, size, put_digest=digest)
            else:
                while sent.count < size:
                    length = min(self._chunk_size, size - sent.count)
                    location = await self._send_part(repository, location, stream, sent, length)
                sent.verify()
                location = await self._send_part(repository, location, stream, sent, 0, put_digest=digest)
        progress(Progress(digest, source.media_type, Phase.DONE, size, size))

    async def _send_part(
        self,
        repository: str,
        location: httpx.URL,
        stream: IO[bytes],
        sent: _Sent,
        length: int,
        *,
        put_digest: str | None = None,
    ) -> httpx.URL:
        """One PATCH chunk (``put_digest`` None) or the closing PUT carrying ``length`` more
        bytes. Not retried: a broken upload is restarted by pushing again."""
        start = sent.count
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        if put_digest is None:
            headers["Content-Range"] = f"{start}-{start + length - 1}"
            url, method = location, "PATCH"
        else:
            url, method = location.copy_merge_params({"digest": put_digest}), "PUT"

        async def body() -> AsyncIterator[bytes]:
            remaining = length
            if put_digest is not None and length == 0:
                sent.verify()
            while remaining > 0:
                chunk = stream.read(min(READ_SIZE, remaining))
                if not chunk:
                    raise ContentMismatch(
                        f"the local content of {sent.source.digest} ended after {sent.count} of "
                        f"{sent.source.size} bytes"
                    )
                remaining -= len(chunk)
                sent.add(chunk)
                if put_digest is not None and remaining == 0 and sent.count == sent.source.size:
                    sent.verify()  # before the last byte leaves: a bad source never completes
                yield chunk

        auth = await self._authorization(repository)
        request_headers = {**headers, **({"Authorization": auth} if auth else {})}
        try:
            response = await self._http.request(method, str(url), headers=request_headers, content=body())
        except httpx.TransportError as exc:
            raise self._transport_failure(exc, url) from None
        try:
            expected = 202 if put_digest is None else 201
            if response.status_code != expected:
                raise await self._failure(response, f"uploading {sent.source.digest} to '{repository}'")
            if put_digest is not None:
                return url
            return response.url.join(response.headers.get("location", str(location)))
        finally:
            await response.aclose()

    # -- HTTP with authentication -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _stream(
        self,
        method: str,
        path: str,
        repository: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: Callable[[], AsyncIterator[bytes]] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed response to a bodyless or small-bodied request, authenticated for
        ``repository``, with one renewal after a ``401`` and bounded retries of transient
        failures."""
        url = self._base + path
        renewed = False
        attempt = 0
        while True:
            auth = await self._authorization(repository)
            request_headers = dict(headers or {})
            if auth:
                request_headers["Authorization"] = auth
            request = self._http.build_request(
                method, url, headers=request_headers, content=content() if content else None
            )
            try:
                response = await self._http.send(
                    request, stream=True, follow_redirects=method in ("GET", "HEAD")
                )
            except httpx.TransportError as exc:
                if attempt < self._max_retries and isinstance(exc, httpx.ConnectError | httpx.ReadError):
                    attempt += 1
                    await asyncio.sleep(self._backoff_s * 2**attempt)
                    continue
                raise self._transport_failure(exc, request.url) from None
            if response.status_code in _RETRY_STATUSES and attempt < self._max_retries:
                await response.aclose()
                attempt += 1
                await asyncio.sleep(self._backoff_s * 2**attempt)
                continue
            if response.status_code == 401 and not renewed:
                challenges = parse_challenges(response.headers.get_list("www-authenticate"))
                if any(scheme in ("bearer", "basic") for scheme, _ in challenges):
                    await response.aclose()
                    await self._answer(repository, challenges, previous=auth)
                    renewed = True
                    continue
            try:
                yield response
            finally:
                await response.aclose()
            return

    async def _authorization(self, repository: str) -> str | None:
        """The ``Authorization`` to send: ``None`` before the first challenge; renewed ahead of
        time when it is about to expire (long pushes outlive short-lived tokens)."""
        state = self._auth.setdefault(repository, _Auth())
        if state.value is not None and time.monotonic() >= state.expires_at and state.challenges:
            await self._answer(repository, state.challenges, previous=state.value)
        return state.value

    async def _answer(
        self, repository: str, challenges: list[tuple[str, dict[str, str]]], *, previous: str | None
    ) -> None:
        """Obtain what a challenge asks for (once, also when parallel requests hit it)."""
        state = self._auth.setdefault(repository, _Auth())
        async with state.lock:
            if state.value != previous and state.value is not None:
                return  # renewed meanwhile by a parallel request
            state.challenges = challenges
            bearer = next((params for scheme, params in challenges if scheme == "bearer"), None)
            if bearer is not None:
                token, lifetime = await self._token(repository, bearer)
                state.value, state.expires_at = f"Bearer {token}", time.monotonic() + lifetime
            elif isinstance(self.credential, BasicCredential):
                state.value, state.expires_at = _basic(self.credential), time.monotonic() + 3600
            else:
                raise RegistryError(
                    401,
                    "UNAUTHORIZED",
                    f"{self.host} asks for a user name and password (--username/--password)",
                )

    async def _token(self, repository: str, challenge: Mapping[str, str]) -> tuple[str, float]:
        realm = challenge.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise RegistryError(
                401, "UNAUTHORIZED", f"{self.host} sent a Bearer challenge without a usable realm"
            )
        if parts.scheme == "http" and self._base.startswith("https:"):
            raise RegistryError(401, "UNAUTHORIZED", f"the token realm {_display(realm)} is not HTTPS")
        service = challenge.get("service", "")
        scope = f"repository:{repository}:{self._actions}"
        credential = self.credential
        if isinstance(credential, EntraExchange):
            answer = None
            if self._refresh_token is not None:  # kept from an earlier exchange; may have expired
                with contextlib.suppress(RegistryError):
                    answer = await self._refreshed(realm, service, scope, self._refresh_token)
            if answer is None:
                self._refresh_token = await self._exchange(parts.scheme, parts.netloc, service, credential)
                answer = await self._refreshed(realm, service, scope, self._refresh_token)
        else:
            query = {"scope": scope, **({"service": service} if service else {})}
            headers = {"Authorization": _basic(credential)} if isinstance(credential, BasicCredential) else {}
            answer = await self._token_call("GET", realm, params=query, headers=headers)
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(0, "UNAUTHORIZED", f"the token service of {self.host} returned no token")
        expires_in = answer.get("expires_in")
        seconds = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        return token, min(seconds, 3600.0) * 0.8

    async def _refreshed(self, realm: str, service: str, scope: str, refresh: str) -> dict[str, Any]:
        data = {"grant_type": "refresh_token", "service": service, "scope": scope, "refresh_token": refresh}
        return await self._token_call("POST", realm, data=data)

    async def _exchange(self, scheme: str, netloc: str, service: str, credential: EntraExchange) -> str:
        entra = await credential.get_token()
        url = urlunsplit((scheme, netloc, "/oauth2/exchange", "", ""))
        answer = await self._token_call(
            "POST", url, data={"grant_type": "access_token", "service": service, "access_token": entra}
        )
        refresh = answer.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise RegistryError(
                0, "UNAUTHORIZED", f"the token exchange of {self.host} returned no refresh_token"
            )
        return refresh

    async def _token_call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, params=params, data=data, headers=headers)
        except httpx.TransportError as exc:
            raise self._transport_failure(exc, httpx.URL(url)) from None
        if response.status_code != 200:
            code, message = _registry_said(response.content[:_ERROR_BODY_LIMIT])
            code = code or ("UNAUTHORIZED" if response.status_code == 401 else f"Http{response.status_code}")
            raise RegistryError(
                response.status_code,
                code.upper() if code.lower() in ("unauthorized", "denied") else code,
                f"{self.host} refused {self._who()}: {message or 'HTTP ' + str(response.status_code)}",
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise RegistryError(
                0, "UNAUTHORIZED", f"the token service of {self.host} did not answer with JSON"
            )
        return answer

    def _who(self) -> str:
        """The credential in words, for messages (never its secret)."""
        if isinstance(self.credential, BasicCredential):
            return f"the credentials of '{self.credential.username}'"
        if isinstance(self.credential, EntraExchange):
            return "the identity's token"
        return "anonymous access"

    async def _failure(self, response: httpx.Response, doing: str) -> RegistryError:
        body = b""
        with contextlib.suppress(httpx.HTTPError):
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) >= _ERROR_BODY_LIMIT:
                    break
        code, message = _registry_said(body)
        status = response.status_code
        fallback = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND"}.get(status, f"Http{status}")
        said = message or f"HTTP {status}"
        return RegistryError(status, code or fallback, f"{doing} on {self.host}: {said}")

    def _transport_failure(self, exc: httpx.TransportError, url: httpx.URL) -> RegistryError:
        found: BaseException | None = exc
        while found is not None and not isinstance(found, ssl.SSLError):
            found = found.__cause__ or found.__context__
        if isinstance(found, ssl.SSLError):
            verify_message = getattr(found, "verify_message", None)
            if verify_message:
                reason = f"certificate verify failed: {verify_message} (is the CA trusted?)"
            else:
                reason = getattr(found, "reason", None) or str(found)
            return RegistryError(0, "TlsFailure", f"TLS with {url.netloc.decode()} failed: {reason}")
        reason = str(exc) or type(exc).__name__
        return RegistryError(0, "RegistryUnreachable", f"cannot reach {_display(url)}: {reason}")


async def certified_by(host: str, ca_path: str, *, within_s: float = 10.0) -> bool:
    """Whether ``host`` (``name[:port]``, port 443 by default) completes a TLS handshake that
    trusts nothing but the CA at ``ca_path``: proof that the server holds a key that CA
    certified. ``False`` when it cannot be reached or presents another certificate."""
    parts = urlsplit(f"https://{host}")
    try:
        port = parts.port or 443
    except ValueError:
        return False
    if not parts.hostname:
        return False
    try:
        context = ssl.create_default_context(cafile=ca_path)  # that CA alone: no system roots
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port, ssl=context), timeout=within_s
        )
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


class _Sent:
    """Bytes of one upload sent so far, hashed as they go."""

    def __init__(self, source: BlobSource, progress: ProgressCallback) -> None:
        self.source = source
        self.count = 0
        self._hasher = hasher_for(source.digest)
        self._progress = progress

    def add(self, chunk: bytes) -> None:
        self.count += len(chunk)
        self._hasher.update(chunk)
        self._progress(
            Progress(self.source.digest, self.source.media_type, Phase.PROGRESS, self.count, self.source.size)
        )

    def verify(self) -> None:
        actual = f"{self._hasher.name}:{self._hasher.hexdigest()}"
        if self.count != self.source.size or actual != self.source.digest:
            raise ContentMismatch(
                f"the local content named {self.source.digest} hashes to {actual} ({self.count} bytes); "
                "the source is corrupt"
            )


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > limit:
            raise ContentMismatch(f"the {what} is larger than {limit} bytes")
    return bytes(data)


def iter_file(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """``size`` bytes of ``stream`` in read-sized pieces."""
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(READ_SIZE, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk
