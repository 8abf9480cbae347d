"""What the puller said to the registry and what it answered: a transport router that records
every exchange of one diagnosis while passing it through unchanged.

:class:`TracingRouter` wraps the platform's :class:`~moorage.instances.images.TransportRouter`
(moorage's registries on the in-process platform channel, everything else over the network), so
the diagnosed pull takes exactly the path a container group's pull takes. Each exchange is kept
as an :class:`Exchange`: method, URL without its query, status, the response headers that
matter for a diagnosis, and — for small JSON answers (token grants, manifests, error bodies) —
the body. Request credentials are never kept in an exchange; the last ``Authorization`` sent to
an origin is held apart, in memory only, so that the blob check can ask with the same grant.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from moorage.instances.images import TransportRouter

_BODY_LIMIT = 4 * 1024 * 1024
_KEPT_HEADERS = ("www-authenticate", "content-type", "docker-content-digest", "content-length", "location")
_NETWORK = 0


@dataclass
class Exchange:
    """One request and its answer (or the transport error that replaced it)."""

    method: str
    url: str  # scheme://host/path, no query or user info
    host: str  # as the puller addressed it (before routing)
    channel: str  # "platform" (in-process) or "network"
    status: int | None = None
    error: str | None = None
    authorization: str | None = None  # the scheme only: "Bearer", "Basic"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)
    ms: float = 0.0

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def json(self) -> Any:
        """The body as JSON, or ``None``."""
        if self.body is None:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def summary(self) -> dict[str, Any]:
        """The exchange as evidence."""
        out: dict[str, Any] = {"request": f"{self.method} {self.url}", "channel": self.channel}
        if self.status is not None:
            out["status"] = self.status
        if self.error is not None:
            out["error"] = self.error
        if self.authorization:
            out["authorization"] = self.authorization
        out["ms"] = round(self.ms, 1)
        return out


class Recorder:
    """The exchanges of one diagnosis, in order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._authorization: dict[str, str] = {}

    def authorization_for(self, origin: str) -> str | None:
        """The last ``Authorization`` value sent to ``origin`` (``scheme://host``) and accepted."""
        return self._authorization.get(origin.lower())

    def remember(self, origin: str, value: str) -> None:
        self._authorization[origin.lower()] = value


class RecordingTransport(httpx.AsyncBaseTransport):
    """Pass requests to ``inner`` and record them. Owns ``inner`` only when ``owned``."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, recorder: Recorder, channel: str, *, owned: bool
    ) -> None:
        self._inner = inner
        self._recorder = recorder
        self._channel = channel
        self._owned = owned

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        display = urlunsplit(
            (url.scheme, url.netloc.decode("ascii", "replace").rpartition("@")[2], url.path, "", "")
        )
        authorization = request.headers.get("authorization")
        exchange = Exchange(
            request.method,
            display,
            url.host + (f":{url.port}" if url.port else ""),
            self._channel,
            authorization=authorization.split(" ", 1)[0] if authorization else None,
        )
        self._recorder.exchanges.append(exchange)
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            exchange.error = f"{type(exc).__name__}: {_reason(exc)}"
            exchange.ms = (time.perf_counter() - started) * 1000
            raise
        exchange.status = response.status_code
        exchange.headers = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
        if authorization and response.status_code < 400 and url.path.startswith("/v2/"):
            self._recorder.remember(f"{url.scheme}://{display.split('/')[2]}", authorization)
        if self._worth_keeping(response):
            raw = bytearray()
            async for chunk in response.stream:  # type: ignore[union-attr]
                raw += chunk
            await response.aclose()
            exchange.body = bytes(raw)
            response = httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=httpx.ByteStream(bytes(raw)),
                request=request,
                extensions=response.extensions,
            )
        exchange.ms = (time.perf_counter() - started) * 1000
        return response

    @staticmethod
    def _worth_keeping(response: httpx.Response) -> bool:
        """Small JSON answers without a content encoding: token grants, manifests, errors."""
        if "content-encoding" in response.headers:
            return False
        if "json" not in response.headers.get("content-type", "").lower():
            return False
        length = response.headers.get("content-length")
        return length is None or (length.isdigit() and int(length) <= _BODY_LIMIT)

    async def aclose(self) -> None:
        if self._owned:
            await self._inner.aclose()


class TracingRouter:
    """Routes as ``base`` does, through recording transports (one per underlying transport)."""

    def __init__(
        self, base: TransportRouter, recorder: Recorder, *, verify: ssl.SSLContext | bool = True
    ) -> None:
        self._base = base
        self._recorder = recorder
        self._verify = verify
        self._wrapped: dict[int, RecordingTransport] = {}

    def route(self, host: str) -> tuple[str, httpx.AsyncBaseTransport | None]:
        routed, transport = self._base.route(host)
        key = id(transport) if transport is not None else _NETWORK
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            if transport is None:
                # The network, with the TLS settings an image source uses by default.
                inner: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
                    verify=self._verify, trust_env=False
                )
                wrapped = RecordingTransport(inner, self._recorder, "network", owned=True)
            else:
                wrapped = RecordingTransport(transport, self._recorder, "platform", owned=False)
            self._wrapped[key] = wrapped
        return routed, wrapped

    async def aclose(self) -> None:
        for transport in self._wrapped.values():
            await transport.aclose()
        self._wrapped.clear()


# -- reading a trace ------------------------------------------------------------------------------

_CHALLENGE = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


def parse_challenge(value: str) -> dict[str, str]:
    """``Bearer realm="…",service="…"`` → ``{"scheme": "Bearer", "realm": …, "service": …}``."""
    scheme, _, rest = value.strip().partition(" ")
    out = {"scheme": scheme}
    for match in _CHALLENGE.finditer(rest):
        key = match.group(1) or match.group(3)
        out[key.lower()] = match.group(2) if match.group(1) else match.group(4)
    return out


def granted_access(token: str) -> list[dict[str, Any]] | None:
    """The ``access`` claim of a registry access token (distribution's JWT shape), unverified —
    evidence of what the token service granted, never trusted for a decision. ``None`` when
    the token is opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    access = claims.get("access") if isinstance(claims, dict) else None
    if not isinstance(access, list):
        return None
    return [
        {"type": a.get("type"), "name": a.get("name"), "actions": list(a.get("actions") or [])}
        for a in access
        if isinstance(a, dict)
    ]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text[:300] if text else type(exc).__name__
