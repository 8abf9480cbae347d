"""The registry listeners serve HTTPS with either HTTP implementation (httptools or h11), with
TCP_NODELAY on accepted connections: a response's headers and body are separate writes, and
without it every response with a body waits for the client's delayed ACK (~40 ms)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send

from moorage import listeners
from moorage.listeners import UvicornListeners
from moorage.tls import ensure_server_tls


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _get_many(port: int, ca: Path, count: int) -> list[tuple[bytes, float]]:
    """``count`` keep-alive GETs on one TLS connection; (response, seconds) for each."""
    context = ssl.create_default_context(cafile=str(ca))
    results = []
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        for _ in range(count):
            start = time.perf_counter()
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while not data.endswith(b'{"ok":true}'):
                chunk = conn.recv(65536)
                assert chunk, "connection closed early"
                data += chunk
            results.append((data, time.perf_counter() - start))
    return results


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
async def test_listener_serves_https_without_nagle_delays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    if implementation == "httptools":
        pytest.importorskip("httptools")
    monkeypatch.setattr(listeners, "http_implementation", lambda: implementation)
    tls = ensure_server_tls(tmp_path / "tls", ["127.0.0.1"])
    served = UvicornListeners("127.0.0.1", tls)
    served.serve_app(_app)
    port = await served.listen(0)
    try:
        results = await asyncio.to_thread(_get_many, port, tls.ca_path, 6)
    finally:
        await served.close_all()
    assert all(response.startswith(b"HTTP/1.1 200") for response, _ in results)
    # With Nagle's algorithm on, each of these waits ~40 ms for the client's delayed ACK.
    assert sorted(seconds for _, seconds in results)[len(results) // 2] < 0.02
