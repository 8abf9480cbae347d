"""``moorage serve``: bind, compose, serve HTTPS with uvicorn, publish ``connection.json``."""

from __future__ import annotations

import asyncio
import ipaddress
import sys

import uvicorn

from moorage.app import Moorage
from moorage.config import Settings
from moorage.core import log as logging_setup
from moorage.core.log import get_logger
from moorage.listeners import UvicornListeners, bind_socket, uvicorn_config
from moorage.tls import ensure_server_tls

log = get_logger("server")


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


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM."""
    settings.home.mkdir(parents=True, exist_ok=True)
    logging_setup.configure(settings.log_file, settings.log_level)
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
    uv = uvicorn.Server(uvicorn_config(server.app, tls))

    async def announce() -> None:
        while not uv.started:
            if uv.should_exit:
                return
            await asyncio.sleep(0.02)
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

    announcer = asyncio.create_task(announce())
    try:
        await uv.serve(sockets=[sock])
    finally:
        announcer.cancel()
        await listeners.close_all()
        await server.close()
