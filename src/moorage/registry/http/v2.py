"""The OCI distribution-spec v1.1 API under ``/v2``.

Routes are matched by hand because repository names contain slashes: the path is split at the
last ``/manifests/``, ``/blobs/uploads``, ``/blobs/``, ``/tags/list`` or ``/referrers/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from moorage.core.errors import InvalidArgument, MoorageError, NotFound, NotSupported
from moorage.edge import json_response
from moorage.registry.auth import Scope
from moorage.registry.content import Content, ManifestUnknown, is_digest, validate_repository
from moorage.registry.http.gate import Caller, Gate
from moorage.registry.manifests import MAX_MANIFEST_BYTES, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST
from moorage.registry.records import ManifestInfo
from moorage.store.blobs import DigestInvalid, OffsetMismatch, SizeMismatch, parse_digest

API_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
_ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?:"
    r"(?P<manifests>manifests)/(?P<reference>[^/]+)"
    r"|(?P<uploads>blobs/uploads)/?(?P<upload>[^/]*)"
    r"|(?P<blobs>blobs)/(?P<digest>[^/]+)"
    r"|(?P<tags>tags/list)"
    r"|(?P<referrers>referrers)/(?P<subject>[^/]+)"
    r")$"
)
_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|\*)?$")
_BYTE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_PAGE_SIZE = 10_000  # the most tags or repositories one page lists, whatever n asks


class RangeInvalid(InvalidArgument):
    """A chunk that does not continue the upload, or an unsatisfiable read range: HTTP 416 with
    the current ``Range`` (or ``Content-Range``) so the client can resume."""

    default_code = "BLOB_UPLOAD_INVALID"
    http_status = 416

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class TooLarge(InvalidArgument):
    """A manifest over the size limit (HTTP 413, as the distribution spec suggests)."""

    default_code = "SIZE_INVALID"
    http_status = 413


def _accepts(request: Request, media_type: str) -> bool:
    """Content negotiation: without ``Accept`` (or with */*) anything goes; otherwise the stored
    type must be acceptable. Docker media types are always served to clients that ask only for
    OCI types? No: like distribution, a manifest is refused (MANIFEST_UNKNOWN) when the client
    could not parse its type."""
    values = [v.split(";")[0].strip() for h in request.headers.getlist("accept") for v in h.split(",")]
    values = [v for v in values if v]
    if not values or "*/*" in values or media_type in values:
        return True
    # Old clients that know nothing of OCI still ask with application/json.
    return "application/json" in values and media_type not in (OCI_IMAGE_MANIFEST, OCI_IMAGE_INDEX)


async def _limited(stream: AsyncIterator[bytes], limit: int) -> bytes:
    data = bytearray()
    async for chunk in stream:
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"manifest exceeds the {limit // (1024 * 1024)} MiB limit")
    return bytes(data)


def _upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _range_header(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def _page(request: Request) -> tuple[int | None, str | None]:
    raw_n = request.query_params.get("n")
    last = request.query_params.get("last") or None
    if raw_n is None or raw_n == "":
        return None, last
    try:
        n = int(raw_n)
    except ValueError as exc:
        raise InvalidArgument("n must be a non-negative integer", code="PAGINATION_NUMBER_INVALID") from exc
    if n < 0:
        raise InvalidArgument("n must be a non-negative integer", code="PAGINATION_NUMBER_INVALID")
    # A larger n gets a full page and a Link header, as the spec allows (and keeps n + 1 in
    # SQLite's integer range).
    return min(n, MAX_PAGE_SIZE), last


class DistributionApi:
    def __init__(self, gate: Gate, content: Content) -> None:
        self._gate = gate
        self._content = content

    # -- base and catalog -----------------------------------------------------------------------

    async def base(self, request: Request) -> Response:
        await self._gate.admit(request, None)
        return json_response({}, 200, API_HEADERS)

    async def catalog(self, request: Request) -> Response:
        caller = await self._gate.admit(request, Scope("registry", "catalog", ("*",)))
        n, last = _page(request)
        names = await self._content.catalog(caller.registry.name, None if n is None else n + 1, last)
        headers = dict(API_HEADERS)
        if n is not None and len(names) > n:
            names = names[:n]
            if names:  # n=0: an empty list and no Link
                headers["Link"] = f'</v2/_catalog?{urlencode({"n": n, "last": names[-1]})}>; rel="next"'
        return json_response({"repositories": names}, 200, headers)

    # -- dispatch -------------------------------------------------------------------------------

    async def dispatch(self, request: Request) -> Response:
        match = _ROUTE.match(request.url.path)
        if match is None:
            raise NotFound("the requested path is not part of the distribution API", code="NAME_UNKNOWN")
        name = match.group("name")
        method = request.method
        if match.group("manifests"):
            validate_repository(name)
            return await self._manifests(request, method, name, match.group("reference"))
        if match.group("uploads"):
            validate_repository(name)
            return await self._uploads(request, method, name, match.group("upload"))
        if match.group("blobs"):
            validate_repository(name)
            return await self._blobs(request, method, name, match.group("digest"))
        if match.group("tags"):
            validate_repository(name)
            self._only(method, "GET")
            return await self._tags(request, name)
        validate_repository(name)
        self._only(method, "GET")
        return await self._referrers(request, name, match.group("subject"))

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")

    async def _admit(self, request: Request, name: str, *actions: str) -> Caller:
        return await self._gate.admit(request, Scope("repository", name, actions))

    # -- manifests ------------------------------------------------------------------------------

    async def _manifests(self, request: Request, method: str, name: str, reference: str) -> Response:
        if method == "HEAD":
            # The stored size gives Content-Length: the body is not read.
            caller = await self._admit(request, name, "pull")
            info = await self._content.resolve(caller.registry.name, name, reference)
            return self._manifest_response(request, info, None)
        if method == "GET":
            caller = await self._admit(request, name, "pull")
            stored = await self._content.get_manifest(caller.registry.name, name, reference)
            return self._manifest_response(request, stored.info, stored.body)
        if method == "PUT":
            caller = await self._admit(request, name, "pull", "push")
            body = await _limited(request.stream(), MAX_MANIFEST_BYTES)
            parsed = await self._content.put_manifest(
                caller.registry.name, name, reference, body, request.headers.get("content-type")
            )
            digest = reference if is_digest(reference) else parsed.digest
            headers = {
                **API_HEADERS,
                "Location": f"/v2/{name}/manifests/{digest}",
                "Docker-Content-Digest": digest,
            }
            if parsed.subject is not None:
                headers["OCI-Subject"] = parsed.subject.digest
            return Response(status_code=201, headers=headers)
        if method == "DELETE":
            caller = await self._admit(request, name, "delete")
            await self._content.delete_manifest(caller.registry.name, name, reference)
            return Response(status_code=202, headers=API_HEADERS)
        raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")

    @staticmethod
    def _manifest_response(request: Request, info: ManifestInfo, body: bytes | None) -> Response:
        """The manifest's headers, with its body unless ``body`` is ``None`` (HEAD)."""
        if not _accepts(request, info.media_type):
            raise ManifestUnknown(
                f"manifest of type '{info.media_type}' is not acceptable to the client's Accept header"
            )
        headers = {
            **API_HEADERS,
            "Content-Type": info.media_type,
            "Docker-Content-Digest": info.digest,
            "Content-Length": str(info.size if body is None else len(body)),
            "ETag": f'"{info.digest}"',
        }
        if body is None:
            return Response(status_code=200, headers=headers)
        return Response(body, status_code=200, headers=headers, media_type=info.media_type)

    # -- blobs ----------------------------------------------------------------------------------

    async def _blobs(self, request: Request, method: str, name: str, digest: str) -> Response:
        parse_digest(digest)
        if method in ("GET", "HEAD"):
            caller = await self._admit(request, name, "pull")
            size = await self._content.blob_size(caller.registry.name, name, digest)
            headers = {
                **API_HEADERS,
                "Docker-Content-Digest": digest,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
                "ETag": f'"{digest}"',
            }
            start, end, status = 0, size, 200
            wanted = request.headers.get("range")
            if wanted:
                match = _BYTE_RANGE.match(wanted.strip())
                if match is None or (not match.group(1) and not match.group(2)):
                    raise RangeInvalid("invalid Range header", {"Content-Range": f"bytes */{size}"})
                if match.group(1):
                    start = int(match.group(1))
                    end = min(int(match.group(2)) + 1, size) if match.group(2) else size
                else:
                    start, end = max(size - int(match.group(2)), 0), size
                if start >= size or start >= end:
                    raise RangeInvalid(
                        "requested range not satisfiable", {"Content-Range": f"bytes */{size}"}
                    )
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            headers["Content-Length"] = str(end - start)
            if method == "HEAD":
                return Response(status_code=status, headers=headers)
            return StreamingResponse(
                self._content.read_blob(digest, start, end), status_code=status, headers=headers
            )
        if method == "DELETE":
            caller = await self._admit(request, name, "delete")
            await self._content.delete_blob(caller.registry.name, name, digest)
            return Response(status_code=202, headers=API_HEADERS)
        raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")

    # -- uploads --------------------------------------------------------------------------------

    async def _uploads(self, request: Request, method: str, name: str, upload_id: str) -> Response:
        if not upload_id:
            self._only(method, "POST")
            return await self._start_upload(request, name)
        caller = await self._admit(request, name, "pull", "push")
        registry = caller.registry.name
        location = _upload_location(name, upload_id)
        if method == "GET":
            size = await self._content.upload_size(registry, name, upload_id)
            return Response(
                status_code=204,
                headers={
                    **API_HEADERS,
                    "Location": location,
                    "Range": _range_header(size),
                    "Docker-Upload-UUID": upload_id,
                },
            )
        if method == "PATCH":
            size = await self._append(request, registry, name, upload_id)
            return Response(
                status_code=202,
                headers={
                    **API_HEADERS,
                    "Location": location,
                    "Range": _range_header(size),
                    "Docker-Upload-UUID": upload_id,
                },
            )
        if method == "PUT":
            digest = request.query_params.get("digest", "")
            if not digest:
                raise DigestInvalid("the digest query parameter is required to complete an upload")
            parse_digest(digest)
            await self._append(request, registry, name, upload_id, allow_empty=True)
            await self._content.complete_upload(registry, name, upload_id, digest)
            return self._created(name, digest)
        if method == "DELETE":
            await self._content.cancel_upload(registry, name, upload_id)
            return Response(status_code=204, headers=API_HEADERS)
        raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")

    @staticmethod
    def _created(name: str, digest: str) -> Response:
        return Response(
            status_code=201,
            headers={
                **API_HEADERS,
                "Location": f"/v2/{name}/blobs/{digest}",
                "Docker-Content-Digest": digest,
            },
        )

    async def _append(
        self, request: Request, registry: str, name: str, upload_id: str, *, allow_empty: bool = False
    ) -> int:
        offset: int | None = None
        content_range = request.headers.get("content-range")
        if content_range:
            match = _RANGE.match(content_range.strip())
            if match is None:
                raise InvalidArgument("invalid Content-Range header", code="BLOB_UPLOAD_INVALID")
            offset = int(match.group(1))
            if int(match.group(2)) < offset:
                raise InvalidArgument("invalid Content-Range header", code="BLOB_UPLOAD_INVALID")
            # The reply's Range must end where the chunk's Content-Range does, so the two
            # headers have to agree (as distribution checks).
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) != int(match.group(2)) - offset + 1:
                raise SizeMismatch("Content-Length does not match the Content-Range of the chunk")
        empty = (
            request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers
        )
        if allow_empty and empty and offset is None:
            return await self._content.upload_size(registry, name, upload_id)
        try:
            return await self._content.append_upload(registry, name, upload_id, request.stream(), offset)
        except OffsetMismatch as exc:
            raise RangeInvalid(
                "chunk does not continue the upload",
                {
                    "Location": _upload_location(name, upload_id),
                    "Range": _range_header(exc.current_size),
                    "Docker-Upload-UUID": upload_id,
                },
            ) from exc

    async def _start_upload(self, request: Request, name: str) -> Response:
        mount = request.query_params.get("mount")
        digest = request.query_params.get("digest")
        caller = await self._admit(request, name, "pull", "push")
        registry = caller.registry.name
        if mount:
            source = request.query_params.get("from") or None
            if source is not None:
                validate_repository(source)

            async def can_read(repository: str) -> bool:
                try:
                    await self._gate.require(request, caller, Scope("repository", repository, ("pull",)))
                except MoorageError:  # any refusal just means "cannot mount from there"
                    return False
                return True

            if await self._content.mount_blob(registry, name, mount, source, can_read) is not None:
                return self._created(name, mount)
        if digest:
            parse_digest(digest)  # before a session exists, so a bad digest leaves nothing behind
        upload_id = await self._content.start_upload(registry, name)
        if digest:
            await self._content.append_upload(registry, name, upload_id, request.stream(), 0)
            await self._content.complete_upload(registry, name, upload_id, digest)
            return self._created(name, digest)
        return Response(
            status_code=202,
            headers={
                **API_HEADERS,
                "Location": _upload_location(name, upload_id),
                "Range": "0-0",
                "Docker-Upload-UUID": upload_id,
                "OCI-Chunk-Min-Length": "0",
            },
        )

    # -- discovery ------------------------------------------------------------------------------

    async def _tags(self, request: Request, name: str) -> Response:
        caller = await self._admit(request, name, "pull")
        n, last = _page(request)
        names = await self._content.tags(caller.registry.name, name, None if n is None else n + 1, last)
        headers = dict(API_HEADERS)
        if n is not None and len(names) > n:
            names = names[:n]
            if names:  # n=0: an empty list and MUST NOT include a Link header
                query = urlencode({"n": n, "last": names[-1]})
                headers["Link"] = f'</v2/{quote(name)}/tags/list?{query}>; rel="next"'
        return json_response({"name": name, "tags": names}, 200, headers)

    async def _referrers(self, request: Request, name: str, digest: str) -> Response:
        parse_digest(digest)
        caller = await self._admit(request, name, "pull")
        artifact_type = request.query_params.get("artifactType") or None
        found = await self._content.referrers(caller.registry.name, name, digest, artifact_type)
        manifests: list[dict[str, Any]] = []
        for info in found:
            entry: dict[str, Any] = {"mediaType": info.media_type, "digest": info.digest, "size": info.size}
            if info.artifact_type:
                entry["artifactType"] = info.artifact_type
            if info.annotations:
                entry["annotations"] = info.annotations
            manifests.append(entry)
        headers = dict(API_HEADERS)
        if artifact_type:
            headers["OCI-Filters-Applied"] = "artifactType"
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX, "manifests": manifests})
        return Response(body, status_code=200, headers=headers, media_type=OCI_IMAGE_INDEX)
