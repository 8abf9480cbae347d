"""The platform channel: how moorage's own services (the container-instances puller) reach the
registry edge — in process, never over a socket.

:class:`PlatformTransport` is an httpx transport that calls the registry's ASGI application
directly, streaming both request and response bodies (multi-GiB layers keep memory flat), and
marks each request with an ASGI scope extension that no network server sets. The firewall grants
the trusted-services bypass only to requests carrying that mark, so it cannot be forged from
outside the moorage process: there is no address, header or token that produces it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

PLATFORM_EXTENSION = "moorage.platform"
_END = object()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, queue: asyncio.Queue[Any], task: asyncio.Task[None]) -> None:
        self._queue = queue
        self._task = task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _platform_scope(request: httpx.Request, address: str) -> dict[str, Any]:
    """The ASGI scope of a platform request: marked with :data:`PLATFORM_EXTENSION`."""
    host = request.url.host + (f":{request.url.port}" if request.url.port else "")
    headers = [(k.lower(), v) for k, v in request.headers.raw if k.lower() != b"host"]
    headers.insert(0, (b"host", host.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "https",
        "path": request.url.path,
        "raw_path": request.url.raw_path.split(b"?")[0],
        "query_string": request.url.query,
        "root_path": "",
        "headers": headers,
        "client": (address, 0),
        "server": ("platform", 0),
        "extensions": {PLATFORM_EXTENSION: True},
    }


class PlatformTransport(httpx.AsyncBaseTransport):
    """Send requests straight into ``app`` as the platform (``client`` = ``platform_address``)."""

    def __init__(self, app: ASGIApp, platform_address: str) -> None:
        self._app = app
        self._address = platform_address

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = _platform_scope(request, self._address)
        body = request.stream
        body_iter = body.__aiter__() if isinstance(body, httpx.AsyncByteStream) else None
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=16)
        started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        body_done = False
        finished = asyncio.Event()

        async def receive() -> Message:
            # ASGI: once the body has been delivered, receive() blocks until the exchange is
            # over and then reports a disconnect (streaming responses listen for it).
            nonlocal body_done
            if body_done:
                await finished.wait()
                return {"type": "http.disconnect"}
            chunk = b""
            if body_iter is not None:
                try:
                    chunk = bytes(await body_iter.__anext__())
                except StopAsyncIteration:
                    chunk = b""
                else:
                    return {"type": "http.request", "body": chunk, "more_body": True}
            body_done = True
            return {"type": "http.request", "body": chunk, "more_body": False}

        ended = False

        async def send(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                started.set_result(message)
            elif message["type"] == "http.response.body" and not ended:
                chunk = message.get("body", b"")
                if chunk:
                    await queue.put(chunk)
                if not message.get("more_body", False):
                    ended = True
                    finished.set()
                    await queue.put(_END)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            except BaseException as exc:  # handed to whoever waits, then re-raised
                if not started.done():
                    started.set_exception(exc)
                else:
                    await queue.put(exc)
                raise
            finally:
                finished.set()
            if not ended:
                await queue.put(_END)

        task = asyncio.create_task(run())
        start = await started
        return httpx.Response(
            status_code=int(start["status"]),
            headers=[(k, v) for k, v in start.get("headers", [])],
            stream=_ResponseStream(queue, task),
            request=request,
        )
