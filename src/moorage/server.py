"""``moorage serve``: bind, compose, serve HTTPS with uvicorn, publish ``connection.json``."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

from moorage.app import Moorage
from moorage.config import Settings
from moorage.core import log as logging_setup
from moorage.core import memory
from moorage.core.log import get_logger
from moorage.listeners import Server, UvicornListeners, bind_socket, uvicorn_config
from moorage.tls import ensure_server_tls

log = get_logger("server")

MALLOC_ARENAS = 2


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind to a URL, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


class Running(NamedTuple):
    """A composed, serving moorage: the started :class:`Moorage`, the port its main endpoint is
    bound to, uvicorn's task (done once the main endpoint stops), and ``stop`` to ask it to."""

    moorage: Moorage
    port: int
    stopped: asyncio.Task[None]
    stop: Callable[[], None]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    """Bind, compose and serve HTTPS in the current event loop; stop and close on exit.

    Yields once the main endpoint accepts connections (or uvicorn has already stopped). Logging
    is the caller's: ``serve`` configures it, in-process tests leave it alone.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    names = [*settings.tls_names]
    if settings.host not in ("0.0.0.0", "::", ""):  # noqa: S104 - excluded from cert names
        names.append(settings.host)
    tls = ensure_server_tls(settings.tls_dir, names)
    sock = bind_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    public_url = settings.public_url or f"https://{_url_host(settings.host)}:{port}"
    listeners = UvicornListeners(settings.host, tls)
    server = Moorage(settings, public_url, listeners)
    await server.start()
    uv = Server(uvicorn_config(server.app, tls))
    stopped = asyncio.create_task(uv.serve(sockets=[sock]), name="moorage-main")
    try:
        # uvicorn exposes readiness only as a flag.
        while not uv.started and not stopped.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        yield Running(server, port, stopped, lambda: setattr(uv, "should_exit", True))
    finally:
        uv.should_exit = True
        if not stopped.done():
            await asyncio.wait([stopped])
        await listeners.close_all()
        await server.close()


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM."""
    # Before any thread exists: two malloc arenas, not one per thread (see moorage.core.memory).
    memory.limit_arenas(MALLOC_ARENAS)
    settings.home.mkdir(parents=True, exist_ok=True)
    logging_setup.configure(settings.log_file, settings.log_level)
    async with running(settings) as run:
        # SIGINT/SIGTERM stop the main endpoint; leaving ``running`` then closes the registry
        # listeners and the server (watchers, sandbox network, metadata store) in order.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, run.stop)
        if not run.stopped.done():
            server = run.moorage
            public_url = settings.public_url or server.public_url
            path = server.write_connection_file()
            info = server.connection_info()
            log.info("ready", endpoint=public_url, connection_file=str(path))
            print(
                f"moorage {info['version']} is serving on {public_url}\n"
                f"  tenant id:        {info['tenantId']}\n"
                f"  subscription id:  {info['subscriptionId']}\n"
                f"  CA certificate:   {info['caPath']}   (export REQUESTS_CA_BUNDLE={info['caPath']})\n"
                f"  bootstrap creds:  {info['credentialsPath']}   (mode 0600)\n"
                f"  connection info:  {path}",
                file=sys.stderr,
                flush=True,
            )
        await run.stopped
