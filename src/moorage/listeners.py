"""Extra listeners started at run time, served by the same process and event loop as the main
endpoint: each registry's login server is an HTTPS port of its own; the container identity
endpoint is plain HTTP on the sandbox bridge's gateway address."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from moorage.core.log import get_logger
from moorage.tls import ServerTLS

log = get_logger("listeners")

# Linux's IP_FREEBIND (not exported by Python's socket module before 3.12).
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


class Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner.

    uvicorn installs its own SIGINT/SIGTERM handlers while it serves and, once it has stopped,
    raises the captured signal again with the previous handler restored — with several servers
    in one process (the main endpoint and one listener per registry) that kills the process
    before moorage's own shutdown (containers' watchers, sandbox teardown, the metadata store)
    ran. ``moorage serve`` handles the signals instead and stops every server itself.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int, *, freebind: bool = False) -> socket.socket:
    """A listening TCP socket; ``freebind`` allows an address the host does not have yet."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # accepted sockets inherit it. Without it every response with a body (headers and body are
    # written separately) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if freebind:
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def http_implementation() -> str:
    """uvicorn's HTTP/1.1 implementation: httptools (a C parser, a dependency) when it is
    installed, else h11 (pure Python, always there with uvicorn). Both run on the same asyncio
    transports, so TLS and TCP_NODELAY (see :func:`bind_socket`) are the same either way."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def uvicorn_config(app: ASGIApp, tls: ServerTLS) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=http_implementation(),
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )


class _Deferred:
    """The app behind the listeners, set once the composition root has built it."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:  # pragma: no cover - listeners open only after the app exists
            raise RuntimeError("listener app not ready")
        await self.app(scope, receive, send)


class UvicornListeners:
    """Implements the registry's ``Listeners`` protocol with one uvicorn server per port."""

    def __init__(self, host: str, tls: ServerTLS) -> None:
        self._host = host
        self._tls = tls
        self._target = _Deferred()
        self._servers: dict[int, tuple[uvicorn.Server, asyncio.Task[None]]] = {}

    def serve_app(self, app: ASGIApp) -> None:
        self._target.app = app

    async def listen(self, port: int) -> int:
        if port and port in self._servers:
            return port
        sock = bind_socket(self._host, port)
        bound = int(sock.getsockname()[1])
        server = Server(uvicorn_config(self._target, self._tls))
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"listener-{bound}")
        self._servers[bound] = (server, task)
        # uvicorn exposes readiness only as a flag.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if task.done():
            task.result()
        log.info("listening", port=bound)
        return bound

    async def close(self, port: int) -> None:
        entry = self._servers.pop(port, None)
        if entry is None:
            return
        server, task = entry
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, timeout=10)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(port) for port in list(self._servers)))


class PlainListener:
    """One plain-HTTP uvicorn server on one address and port, for the container identity endpoint.

    :meth:`bind` binds with ``IP_FREEBIND``: the sandbox bridge (and so its gateway address)
    appears only with the first sandbox and goes with the last, while the socket stays. The peer
    address reaches the app unchanged (no proxy headers are believed)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def bind(self) -> int:
        """Bind now (raises ``OSError``, e.g. when the port is taken); return the bound port."""
        self._sock = bind_socket(self.host, self.port, freebind=True)
        self.port = int(self._sock.getsockname()[1])
        return self.port

    async def serve(self, app: ASGIApp) -> None:
        """Start serving ``app`` on the bound socket."""
        if self._sock is None:
            raise RuntimeError("PlainListener.serve before bind")
        config = uvicorn.Config(
            app,
            http=http_implementation(),
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = server = Server(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[self._sock]), name=f"plain-{self.port}")
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes only a flag
            await asyncio.sleep(0.005)
        if task.done():
            task.result()
        log.info("listening", host=self.host, port=self.port, tls=False)

    async def close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=10)
        elif self._sock is not None:
            self._sock.close()
        self._server = self._task = self._sock = None
