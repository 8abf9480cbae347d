"""The ``moorage`` command line against a live server (JSON output parsed, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx

from tests.api.conftest import fetch_token, trust
from tests.server import RunningServer


def moorage(server: RunningServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "moorage", *args, "--home", str(server.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_ca_prints_the_ca_path(server: RunningServer) -> None:
    assert moorage(server, "ca").stdout.strip() == server.ca_path


def test_status(server: RunningServer) -> None:
    body = as_json(moorage(server, "status"))
    assert body["status"] == "ok"
    assert body["subscriptions"] == [server.subscription_id]


def test_sp_create_with_role_is_shaped_like_create_for_rbac(server: RunningServer) -> None:
    scope = f"/subscriptions/{server.subscription_id}"
    created = as_json(
        moorage(server, "sp", "create", "--name", "ci-reader", "--role", "Reader", "--scopes", scope)
    )
    assert set(created) == {"appId", "displayName", "password", "tenant"}
    assert created["tenant"] == server.tenant_id
    token = fetch_token(server, created["appId"], created["password"])
    response = httpx.get(
        f"{server.endpoint}/subscriptions/{server.subscription_id}/resourcegroups",
        params={"api-version": "2024-11-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=trust(server),
    )
    assert response.status_code == 200


def test_sp_show_list_reset_delete(server: RunningServer) -> None:
    created = as_json(moorage(server, "sp", "create", "--name", "lifecycle"))
    shown = as_json(moorage(server, "sp", "show", created["appId"]))
    assert shown["appId"] == created["appId"]
    assert "password" not in json.dumps(shown).lower().replace("passwordcredentials", "")
    assert created["appId"] in [p["appId"] for p in as_json(moorage(server, "sp", "list"))]
    reset = as_json(moorage(server, "sp", "reset-credentials", created["appId"]))
    assert reset["password"] != created["password"]
    old = httpx.post(
        f"{server.endpoint}/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": created["appId"],
            "client_secret": created["password"],
            "scope": "https://management.azure.com/.default",
        },
        verify=trust(server),
    )
    assert old.status_code == 401
    assert fetch_token(server, created["appId"], reset["password"])
    moorage(server, "sp", "delete", created["appId"])
    missing = moorage(server, "sp", "show", created["appId"], check=False)
    assert missing.returncode == 1
    assert "PrincipalNotFound" in missing.stderr


def test_sp_create_role_needs_scopes(server: RunningServer) -> None:
    result = moorage(server, "sp", "create", "--role", "Reader", check=False)
    assert result.returncode == 2
