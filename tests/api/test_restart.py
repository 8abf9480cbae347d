"""State survives a restart of the server, graceful (SIGTERM) or not (SIGKILL).

Each test runs its own server: it creates a resource group, a user-assigned identity and a role
assignment, takes a management token, restarts the server, and checks one thing afterwards. The
server binds a new port on each start, so clients re-read ``fresh_server.endpoint``.
"""

from __future__ import annotations

import signal
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.server import RunningServer

RG_API = "2024-11-01"
MSI_API = "2024-11-30"
AUTHZ_API = "2022-04-01"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

SIGNALS = [pytest.param(signal.SIGTERM, id="sigterm"), pytest.param(signal.SIGKILL, id="sigkill")]


def client(server: RunningServer) -> httpx.Client:
    """A client for the server's current endpoint (it changes across restarts)."""
    return httpx.Client(
        base_url=server.endpoint, verify=ssl.create_default_context(cafile=server.ca_path), timeout=30
    )


def management_token(server: RunningServer, client_id: str, secret: str) -> str:
    with client(server) as http:
        response = http.post(
            f"/{server.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": "https://management.azure.com/.default",
            },
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def arm(server: RunningServer, token: str, method: str, path: str, api: str, **kw: Any) -> httpx.Response:
    with client(server) as http:
        return http.request(
            method, path, params={"api-version": api}, headers={"Authorization": f"Bearer {token}"}, **kw
        )


@dataclass(frozen=True)
class World:
    """What a test created before the restart, as the server described it then."""

    token: str
    group_path: str
    group: dict[str, Any]
    identity_path: str
    identity: dict[str, Any]
    assignment_path: str
    assignment: dict[str, Any]


def build_world(server: RunningServer) -> World:
    token = management_token(server, server.client_id, server.client_secret)
    suffix = uuid.uuid4().hex[:8]
    group_path = f"/subscriptions/{server.subscription_id}/resourcegroups/rg-restart-{suffix}"
    group = arm(server, token, "PUT", group_path, RG_API, json={"location": "westus", "tags": {"t": suffix}})
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]

    identity_path = f"{group_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{suffix}"
    identity = arm(server, token, "PUT", identity_path, MSI_API, json={"location": "westus"})
    assert identity.status_code == 201, identity.text
    principal_id = identity.json()["properties"]["principalId"]

    assignment_path = f"{group_id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    role = (
        f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    )
    body = {
        "properties": {
            "roleDefinitionId": role,
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
        }
    }
    assignment = arm(server, token, "PUT", assignment_path, AUTHZ_API, json=body)
    assert assignment.status_code == 201, assignment.text
    return World(
        token, group_path, group.json(), identity_path, identity.json(), assignment_path, assignment.json()
    )


@pytest.fixture(params=SIGNALS)
def restarted(request: pytest.FixtureRequest, fresh_server: RunningServer) -> tuple[RunningServer, World]:
    """A server with a world built before it was restarted with the parametrized signal."""
    world = build_world(fresh_server)
    fresh_server.restart(request.param)
    return fresh_server, world


def test_resource_group_survives_restart(restarted: tuple[RunningServer, World]) -> None:
    server, world = restarted
    token = management_token(server, server.client_id, server.client_secret)
    response = arm(server, token, "GET", world.group_path, RG_API)
    assert response.status_code == 200, response.text
    assert response.json() == world.group


def test_user_assigned_identity_survives_restart(restarted: tuple[RunningServer, World]) -> None:
    server, world = restarted
    token = management_token(server, server.client_id, server.client_secret)
    response = arm(server, token, "GET", world.identity_path, MSI_API)
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["id"] == world.identity["id"]
    assert after["properties"]["principalId"] == world.identity["properties"]["principalId"]
    assert after["properties"]["clientId"] == world.identity["properties"]["clientId"]
    assert after["properties"]["tenantId"] == server.tenant_id


def test_role_assignment_survives_restart(restarted: tuple[RunningServer, World]) -> None:
    server, world = restarted
    token = management_token(server, server.client_id, server.client_secret)
    response = arm(server, token, "GET", world.assignment_path, AUTHZ_API)
    assert response.status_code == 200, response.text
    after, before = response.json(), world.assignment
    assert after["id"] == before["id"]
    assert after["properties"]["principalId"] == world.identity["properties"]["principalId"]
    assert after["properties"]["roleDefinitionId"] == before["properties"]["roleDefinitionId"]
    assert after["properties"]["scope"] == before["properties"]["scope"]


def test_token_issued_before_restart_is_still_accepted(restarted: tuple[RunningServer, World]) -> None:
    server, world = restarted
    response = arm(server, world.token, "GET", world.group_path, RG_API)
    assert response.status_code == 200, response.text


def test_bootstrap_credentials_still_work_after_restart(restarted: tuple[RunningServer, World]) -> None:
    server, _world = restarted
    token = management_token(server, server.client_id, server.client_secret)
    response = arm(server, token, "GET", f"/subscriptions/{server.subscription_id}", RG_API)
    assert response.status_code == 200, response.text
    assert response.json()["subscriptionId"] == server.subscription_id


def test_connection_facts_are_stable_across_restart(fresh_server: RunningServer) -> None:
    before = dict(fresh_server.info)
    fresh_server.restart()
    after = fresh_server.info
    for fact in ("tenantId", "subscriptionId", "clientId", "clientSecret", "caPath"):
        assert after[fact] == before[fact], fact


def test_issuer_is_stable_across_restart(fresh_server: RunningServer) -> None:
    def issuers() -> tuple[str, str]:
        token = management_token(fresh_server, fresh_server.client_id, fresh_server.client_secret)
        with client(fresh_server) as http:
            config = http.get(f"/{fresh_server.tenant_id}/v2.0/.well-known/openid-configuration")
        assert config.status_code == 200, config.text
        return str(jwt.decode(token, options={"verify_signature": False})["iss"]), str(
            config.json()["issuer"]
        )

    before = issuers()
    assert before[0] == before[1]
    fresh_server.restart()
    assert issuers() == before
