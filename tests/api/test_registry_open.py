"""Operator-opened registries (``MOORAGE_REGISTRY_OPEN``): anonymous clients may pull, push and
delete there — how the OCI conformance suite runs "without authentication" — and nowhere else."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_support import create_registry
from tests.server import RunningServer

OPEN_NAME = "openconformance1"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = RunningServer(
        tmp_path_factory.mktemp("open") / "home", extra_env={"MOORAGE_REGISTRY_OPEN": OPEN_NAME}
    )
    server.start()
    yield server
    server.stop()
    server.remove_runtime_objects()


@pytest.fixture(scope="module")
def registries(open_server: RunningServer) -> Iterator[tuple[str, str]]:
    arm = RawArm(open_server, fetch_token(open_server, open_server.client_id, open_server.client_secret))
    with arm.http:
        path = f"/subscriptions/{open_server.subscription_id}/resourcegroups/rg-open"
        assert arm.request("PUT", path, json={"location": "westus"}).status_code == 201
        opened = create_registry(arm, "rg-open", OPEN_NAME, sku="Basic")
        closed = create_registry(arm, "rg-open", sku="Basic")
        yield opened.login_server, closed.login_server


def client(server: RunningServer, login: str) -> httpx.Client:
    return httpx.Client(base_url=f"https://{login}", verify=ssl.create_default_context(cafile=server.ca_path))


def test_anonymous_push_and_pull_on_an_open_registry(
    open_server: RunningServer, registries: tuple[str, str]
) -> None:
    data = b"conformance blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with client(open_server, registries[0]) as http:
        assert http.get("/v2/").status_code == 200
        pushed = http.post("/v2/conf/repo/blobs/uploads/", params={"digest": digest}, content=data)
        assert pushed.status_code == 201, pushed.text
        pulled = http.get(f"/v2/conf/repo/blobs/{digest}")
        assert (pulled.status_code, pulled.content) == (200, data)
        assert http.delete(f"/v2/conf/repo/blobs/{digest}").status_code == 202


def test_other_registries_still_require_credentials(
    open_server: RunningServer, registries: tuple[str, str]
) -> None:
    with client(open_server, registries[1]) as http:
        base = http.get("/v2/")
        push = http.post("/v2/conf/repo/blobs/uploads/")
    assert base.status_code == 401
    assert push.status_code == 401
    assert push.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_the_open_setting_is_not_an_arm_property(open_server: RunningServer) -> None:
    arm = RawArm(open_server, fetch_token(open_server, open_server.client_id, open_server.client_secret))
    with arm.http:
        body = arm.request(
            "GET",
            f"/subscriptions/{open_server.subscription_id}/resourceGroups/rg-open/providers/"
            f"Microsoft.ContainerRegistry/registries/{OPEN_NAME}",
            api_version="2025-04-01",
        ).json()
    assert body["properties"]["anonymousPullEnabled"] is False
