"""The container identity endpoint's parts that need no containers: per-sandbox secrets, the key
file, its listener (plain HTTP, bound with IP_FREEBIND) and its setting. The endpoint itself is
exercised end to end in tests/api/test_container_identity.py."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from moorage import config
from moorage.core.errors import InvalidArgument
from moorage.instances.identity_endpoint import IdentitySecrets, load_key
from moorage.listeners import PlainListener, bind_socket

GROUP = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/cg"
URL = "http://10.1.0.1:42356/msi/token"
# TEST-NET-1 (RFC 5737): never an address of this host.
ABSENT_ADDRESS = "192.0.2.77"


def test_secret_is_per_group_and_sandbox() -> None:
    secrets = IdentitySecrets(b"k" * 32, URL)
    one = secrets.secret(GROUP, "cg-1")
    assert one == secrets.secret(GROUP.upper(), "cg-1")  # ARM ids compare case-insensitively
    assert len({one, secrets.secret(GROUP, "cg-2"), secrets.secret(GROUP + "x", "cg-1")}) == 3
    assert one != IdentitySecrets(b"j" * 32, URL).secret(GROUP, "cg-1")
    assert secrets.accepts(one, GROUP, "cg-1")
    assert not secrets.accepts(one, GROUP, "cg-2")
    assert not secrets.accepts(one[:-1], GROUP, "cg-1")
    assert "k" * 8 not in repr(secrets)


def test_environment_names_the_endpoint_and_the_secret() -> None:
    secrets = IdentitySecrets(b"k" * 32, URL)
    env = secrets.environment(GROUP, "cg-1")
    assert env == {
        "IDENTITY_ENDPOINT": URL,
        "IDENTITY_HEADER": secrets.secret(GROUP, "cg-1"),
        "MSI_ENDPOINT": URL,
        "MSI_SECRET": secrets.secret(GROUP, "cg-1"),
    }


def test_key_is_created_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "identity-endpoint.key"
    key = load_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key


def test_truncated_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "identity-endpoint.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="truncated"):
        load_key(path)


def test_freebind_binds_an_address_the_host_does_not_have() -> None:
    with pytest.raises(OSError):  # noqa: PT011 - EADDRNOTAVAIL; the errno differs by kernel
        bind_socket(ABSENT_ADDRESS, 0).close()
    sock = bind_socket(ABSENT_ADDRESS, 0, freebind=True)
    try:
        assert sock.getsockname()[0] == ABSENT_ADDRESS
    finally:
        sock.close()


async def test_plain_listener_serves_http_with_the_real_peer() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope["client"][0].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": peer})

    listener = PlainListener("127.0.0.1", 0)
    port = listener.bind()
    assert port > 0
    await listener.serve(app)
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(
                f"http://127.0.0.1:{port}/msi/token", headers={"X-Forwarded-For": "10.9.9.9"}
            )
        assert (response.status_code, response.text) == (200, "127.0.0.1")
        assert "server" not in response.headers
    finally:
        await listener.close()
    probe = socket.socket()
    try:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # closed
    finally:
        probe.close()


def test_identity_endpoint_port_setting(tmp_path: Path) -> None:
    home = {"MOORAGE_HOME": str(tmp_path)}
    assert config.load(home).identity_endpoint_port == config.DEFAULT_IDENTITY_ENDPOINT_PORT
    assert config.load({**home, "MOORAGE_IDENTITY_ENDPOINT_PORT": "0"}).identity_endpoint_port == 0
    for bad in ("65536", "-1", "http"):
        with pytest.raises(InvalidArgument):
            config.load({**home, "MOORAGE_IDENTITY_ENDPOINT_PORT": bad})
