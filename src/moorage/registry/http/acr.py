"""ACR's metadata API (``/acr/v1``), which azure-containerregistry and ``az acr repository`` use:
repositories, tags and manifests with their properties, and repository deletion."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from moorage.core.clock import isoformat
from moorage.core.errors import NotFound, NotSupported
from moorage.edge import json_response
from moorage.registry.auth import Scope
from moorage.registry.content import Content, validate_repository
from moorage.registry.http.gate import Gate
from moorage.registry.http.v2 import API_HEADERS, _page
from moorage.registry.records import ManifestInfo, TagInfo

_ROUTE = re.compile(r"^/acr/v1/(?P<name>.+?)(?:/(?P<kind>_tags|_manifests)(?:/(?P<reference>[^/]+))?)?$")
_CHANGEABLE = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}


class AcrMetadataApi:
    def __init__(self, gate: Gate, content: Content) -> None:
        self._gate = gate
        self._content = content

    async def catalog(self, request: Request) -> Response:
        caller = await self._gate.admit(request, Scope("registry", "catalog", ("*",)))
        n, last = _page(request)
        names = await self._content.catalog(caller.registry.name, None if n is None else n + 1, last)
        headers = dict(API_HEADERS)
        if n is not None and len(names) > n:
            names = names[:n]
            headers["Link"] = f'</acr/v1/_catalog?{urlencode({"n": n, "last": names[-1]})}>; rel="next"'
        return json_response({"repositories": names}, 200, headers)

    async def dispatch(self, request: Request) -> Response:
        match = _ROUTE.match(request.url.path)
        if match is None:
            raise NotFound("unknown ACR API path", code="NAME_UNKNOWN")
        name = validate_repository(match.group("name"))
        kind, reference, method = match.group("kind"), match.group("reference"), request.method
        if kind is None:
            return await self._repository(request, method, name)
        if kind == "_tags":
            return await self._tags(request, method, name, reference)
        return await self._manifests(request, method, name, reference)

    async def _repository(self, request: Request, method: str, name: str) -> Response:
        if method == "GET":
            caller = await self._gate.admit(request, Scope("repository", name, ("metadata_read",)))
            info = await self._content.repository_info(caller.registry.name, name)
            return json_response(
                {
                    "registry": caller.registry.login_server,
                    "imageName": info.name,
                    "createdTime": isoformat(info.created_at),
                    "lastUpdateTime": isoformat(info.updated_at),
                    "manifestCount": info.manifest_count,
                    "tagCount": info.tag_count,
                    "changeableAttributes": {**_CHANGEABLE, "teleportEnabled": False},
                },
                200,
                API_HEADERS,
            )
        if method == "DELETE":
            caller = await self._gate.admit(request, Scope("repository", name, ("delete",)))
            manifests, tags = await self._content.delete_repository(caller.registry.name, name)
            return json_response({"manifestsDeleted": manifests, "tagsDeleted": tags}, 202, API_HEADERS)
        if method == "PATCH":
            caller = await self._gate.admit(request, Scope("repository", name, ("metadata_write",)))
            info = await self._content.repository_info(caller.registry.name, name)
            return json_response(
                {
                    "registry": caller.registry.login_server,
                    "imageName": info.name,
                    "createdTime": isoformat(info.created_at),
                    "lastUpdateTime": isoformat(info.updated_at),
                    "manifestCount": info.manifest_count,
                    "tagCount": info.tag_count,
                    "changeableAttributes": {**_CHANGEABLE, "teleportEnabled": False},
                },
                200,
                API_HEADERS,
            )
        raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")

    @staticmethod
    def _tag(tag: TagInfo) -> dict[str, Any]:
        return {
            "name": tag.name,
            "digest": tag.digest,
            "createdTime": isoformat(tag.created_at),
            "lastUpdateTime": isoformat(tag.updated_at),
            "signed": False,
            "changeableAttributes": dict(_CHANGEABLE),
        }

    async def _tags(self, request: Request, method: str, name: str, reference: str | None) -> Response:
        if method == "GET":
            caller = await self._gate.admit(request, Scope("repository", name, ("metadata_read",)))
            tags = await self._content.tag_infos(caller.registry.name, name)
            if reference is None:
                return json_response(
                    {
                        "registry": caller.registry.login_server,
                        "imageName": name,
                        "tags": [self._tag(t) for t in tags],
                    },
                    200,
                    API_HEADERS,
                )
            found = next((t for t in tags if t.name == reference), None)
            if found is None:
                raise NotFound(f"the tag '{reference}' does not exist", code="TAG_UNKNOWN")
            return json_response(
                {"registry": caller.registry.login_server, "imageName": name, "tag": self._tag(found)},
                200,
                API_HEADERS,
            )
        if method == "DELETE" and reference is not None:
            caller = await self._gate.admit(request, Scope("repository", name, ("delete",)))
            await self._content.delete_manifest(caller.registry.name, name, reference)
            return Response(status_code=202, headers=API_HEADERS)
        raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")

    async def _manifest_body(self, registry: str, name: str, info: ManifestInfo) -> dict[str, Any]:
        body: dict[str, Any] = {
            "digest": info.digest,
            "imageSize": info.size,
            "createdTime": isoformat(info.created_at),
            "lastUpdateTime": isoformat(info.created_at),
            "mediaType": info.media_type,
            "tags": list(info.tags),
            "changeableAttributes": dict(_CHANGEABLE),
        }
        if info.config_media_type:
            body["configMediaType"] = info.config_media_type
        platform = await self._platform(registry, name, info)
        if platform:
            body.update(platform)
        return body

    async def _platform(self, registry: str, name: str, info: ManifestInfo) -> dict[str, str] | None:
        """``architecture``/``os`` from the image config, when the manifest is an image."""
        if not info.config_media_type or not info.config_media_type.endswith(
            ("config.v1+json", "container.image.v1+json")
        ):
            return None
        stored = await self._content.get_manifest(registry, name, info.digest)
        try:
            config_digest = json.loads(stored.body)["config"]["digest"]
            config = json.loads(await self._content.blobs.read_all(config_digest))
        except (ValueError, KeyError, TypeError, NotFound):
            return None
        if not isinstance(config, dict):
            return None
        return {k: str(config[k]) for k in ("architecture", "os") if isinstance(config.get(k), str)}

    async def _manifests(self, request: Request, method: str, name: str, reference: str | None) -> Response:
        if method != "GET":
            if method == "DELETE" and reference is not None:
                caller = await self._gate.admit(request, Scope("repository", name, ("delete",)))
                await self._content.delete_manifest(caller.registry.name, name, reference)
                return Response(status_code=202, headers=API_HEADERS)
            raise NotSupported(f"method {method} is not supported here", code="UNSUPPORTED")
        caller = await self._gate.admit(request, Scope("repository", name, ("metadata_read",)))
        registry = caller.registry.name
        if reference is None:
            infos = await self._content.manifests_of(registry, name)
            return json_response(
                {
                    "registry": caller.registry.login_server,
                    "imageName": name,
                    "manifests": [await self._manifest_body(registry, name, i) for i in infos],
                },
                200,
                API_HEADERS,
            )
        info = await self._content.resolve(registry, name, reference, with_tags=True)
        return json_response(
            {
                "registry": caller.registry.login_server,
                "imageName": name,
                "manifest": await self._manifest_body(registry, name, info),
            },
            200,
            API_HEADERS,
        )
