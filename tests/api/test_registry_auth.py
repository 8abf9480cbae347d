"""ACR's registry auth over raw HTTPS: the challenge, the token service (Basic, refresh token,
Entra exchange, null-GUID login, anonymous), RBAC roles, and repository-scoped tokens."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_http import (
    DENIED_BODY,
    NULL_GUID,
    LoginServer,
    Principal,
    assign_role,
    basic,
    bearer,
    create_principal,
    delete_principal,
    jwt_payload,
    small_image,
    unassign_role,
)
from tests.api.registry_support import API, admin_password, create_registry, unique_name
from tests.api.registry_support import TestRegistry as Registry

MANAGEMENT = "https://management.azure.com/.default"


@dataclass
class Setup:
    group: str
    group_id: str
    registry: Registry
    admin: dict[str, str]  # Basic header of the admin user
    client: LoginServer
    base_digest: str  # manifest of base:v1, pushed by the admin user


@pytest.fixture(scope="module")
def setup(raw: RawArm) -> Iterator[Setup]:
    """One resource group with a Premium registry (admin enabled) holding ``base:v1``."""
    group = f"rg-auth-{uuid.uuid4().hex[:8]}"
    group_id = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{group}"
    response = raw.request("PUT", group_id, json={"location": "westus"})
    assert response.status_code in (200, 201), response.text
    registry = create_registry(raw, group, adminUserEnabled=True)
    admin = basic(registry.name, admin_password(raw, registry))
    client = LoginServer(registry.login_server, raw.server.ca_path)
    pushed = client.push("base", "v1", small_image("base"), admin)
    assert pushed.status_code == 201, pushed.text
    try:
        yield Setup(group, group_id, registry, admin, client, pushed.headers["Docker-Content-Digest"])
    finally:
        client.close()
        raw.request("DELETE", group_id)


@pytest.fixture(scope="module")
def principals(raw: RawArm) -> Iterator[Callable[[], Principal]]:
    """Makes service principals with no role; deletes them at the end of the module."""
    made: list[Principal] = []

    def make() -> Principal:
        made.append(create_principal(raw))
        return made[-1]

    yield make
    for principal in made:
        delete_principal(raw, principal)


def sp_basic(principal: Principal) -> dict[str, str]:
    return basic(principal.app_id, principal.secret)


def challenge(login: str, scope: str | None = None) -> str:
    value = f'Bearer realm="https://{login}/oauth2/token",service="{login}"'
    return value + (f',scope="{scope}"' if scope else "")


# -- the challenge ------------------------------------------------------------------------------------


def test_anonymous_pull_is_challenged(setup: Setup) -> None:
    response = setup.client.manifest("base", "v1")
    assert response.status_code == 401
    login = setup.registry.login_server
    assert response.headers["WWW-Authenticate"] == challenge(login, "repository:base:pull")
    assert response.json() == {
        "errors": [
            {
                "code": "UNAUTHORIZED",
                "message": "authentication required",
                "detail": [{"Type": "repository", "Name": "base", "Action": "pull"}],
            }
        ]
    }


def test_anonymous_base_is_challenged_without_scope(setup: Setup) -> None:
    response = setup.client.http.get("/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge(setup.registry.login_server)
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert response.json()["errors"][0]["message"] == "authentication required"


def test_anonymous_catalog_is_challenged_with_catalog_scope(setup: Setup) -> None:
    response = setup.client.http.get("/v2/_catalog")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge(
        setup.registry.login_server, "registry:catalog:*"
    )


def test_anonymous_push_is_challenged_with_push_scope(setup: Setup) -> None:
    response = setup.client.http.post("/v2/newrepo/blobs/uploads/")
    assert response.status_code == 401
    login = setup.registry.login_server
    assert response.headers["WWW-Authenticate"] == challenge(login, "repository:newrepo:pull,push")
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


# -- admin user ---------------------------------------------------------------------------------------


def test_admin_basic_gets_an_access_token(setup: Setup) -> None:
    token = setup.client.access_token("repository:base:pull,push", headers=setup.admin)
    claims = jwt_payload(token)
    assert claims["iss"] == "Azure Container Registry"
    assert claims["aud"] == setup.registry.login_server
    assert claims["grant_type"] == "access_token"
    assert claims["access"] == [{"type": "repository", "name": "base", "actions": ["pull", "push"]}]
    response = setup.client.manifest("base", "v1", bearer(token))
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == setup.base_digest


def test_admin_basic_directly_on_v2(setup: Setup) -> None:
    response = setup.client.manifest("base", "v1", setup.admin)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == setup.base_digest


def test_admin_wrong_password_is_unauthorized(setup: Setup) -> None:
    response = setup.client.token_response("repository:base:pull", headers=basic(setup.registry.name, "nope"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_catalog_with_admin(setup: Setup) -> None:
    token = setup.client.access_token("registry:catalog:*", headers=setup.admin)
    response = setup.client.http.get("/v2/_catalog", headers=bearer(token))
    assert response.status_code == 200
    assert "base" in response.json()["repositories"]


# -- service principals and RBAC --------------------------------------------------------------------------

ALL_ALLOWED = {"pull": 200, "push": 201, "delete": 202}
ROLE_CASES = [
    ("AcrPull", "registry", {"pull": 200, "push": 403, "delete": 403}),
    ("AcrPush", "registry", {"pull": 200, "push": 201, "delete": 403}),
    ("AcrDelete", "registry", {"pull": 403, "push": 403, "delete": 202}),
    ("Reader", "group", {"pull": 200, "push": 403, "delete": 403}),
    ("Contributor", "group", ALL_ALLOWED),
    ("Owner", "group", ALL_ALLOWED),
    ("AcrPull", "subscription", {"pull": 200, "push": 403, "delete": 403}),
    ("Contributor", "subscription", ALL_ALLOWED),
]


def scope_of(setup: Setup, raw: RawArm, where: str) -> str:
    return {
        "registry": setup.registry.id,
        "group": setup.group_id,
        "subscription": f"/subscriptions/{raw.server.subscription_id}",
    }[where]


def attempt(setup: Setup, operation: str, headers: dict[str, str]) -> Any:
    """Perform ``operation`` with ``headers``; returns the response."""
    if operation == "pull":
        return setup.client.manifest("base", "v1", headers)
    repo = unique_name("repo")
    if operation == "push":
        return setup.client.push(repo, "v1", small_image(repo), headers)
    pushed = setup.client.push(repo, "v1", small_image(repo), setup.admin)
    assert pushed.status_code == 201, pushed.text
    return setup.client.delete_manifest(repo, pushed.headers["Docker-Content-Digest"], headers)


@pytest.mark.parametrize("case", ROLE_CASES, ids=[f"{r}@{w}" for r, w, _ in ROLE_CASES])
@pytest.mark.parametrize("operation", ["pull", "push", "delete"])
def test_role_grants(
    setup: Setup,
    raw: RawArm,
    principals: Callable[[], Principal],
    case: tuple[str, str, dict[str, int]],
    operation: str,
) -> None:
    role, where, expected = case
    principal = principals()
    assignment = assign_role(raw, scope_of(setup, raw, where), role, principal.object_id)
    try:
        response = attempt(setup, operation, sp_basic(principal))
    finally:
        unassign_role(raw, assignment)
    assert response.status_code == expected[operation], response.text
    if expected[operation] == 403:
        assert response.json() == DENIED_BODY


@pytest.mark.parametrize("operation", ["pull", "push", "delete"])
def test_no_role_is_denied(setup: Setup, principals: Callable[[], Principal], operation: str) -> None:
    response = attempt(setup, operation, sp_basic(principals()))
    assert response.status_code == 403
    assert response.json() == DENIED_BODY


def test_sp_token_holds_only_granted_actions(
    setup: Setup, raw: RawArm, principals: Callable[[], Principal]
) -> None:
    principal = principals()
    assign_role(raw, setup.registry.id, "AcrPull", principal.object_id)
    token = setup.client.access_token("repository:base:pull,push,delete", headers=sp_basic(principal))
    assert jwt_payload(token)["access"] == [{"type": "repository", "name": "base", "actions": ["pull"]}]
    assert setup.client.manifest("base", "v1", bearer(token)).status_code == 200
    pushed = setup.client.push("base", "v2", small_image("other"), bearer(token))
    assert pushed.status_code == 403
    assert pushed.json() == DENIED_BODY


def test_sp_wrong_secret_is_unauthorized(setup: Setup, principals: Callable[[], Principal]) -> None:
    principal = principals()
    response = setup.client.manifest("base", "v1", basic(principal.app_id, "wrong-secret"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


# -- repository-scoped tokens ------------------------------------------------------------------------------


def put_token(raw: RawArm, registry: Registry, name: str, scope_map: str, status: str = "enabled") -> None:
    response = raw.request(
        "PUT",
        f"{registry.id}/tokens/{name}",
        api_version=API,
        json={"properties": {"scopeMapId": f"{registry.id}/scopeMaps/{scope_map}", "status": status}},
    )
    assert response.status_code in (200, 201), response.text


@pytest.fixture(scope="module")
def repo_token(raw: RawArm, setup: Setup) -> dict[str, str]:
    """A token whose scope map allows pull and push on ``team/app`` only; its Basic header."""
    registry = setup.registry
    actions = [f"repositories/team/app/{a}" for a in ("content/read", "content/write", "metadata/read")]
    response = raw.request(
        "PUT", f"{registry.id}/scopeMaps/team-app", api_version=API, json={"properties": {"actions": actions}}
    )
    assert response.status_code in (200, 201), response.text
    put_token(raw, registry, "team-app-ci", "team-app")
    response = raw.request(
        "POST",
        f"{registry.id}/generateCredentials",
        api_version=API,
        json={"tokenId": f"{registry.id}/tokens/team-app-ci"},
    )
    assert response.status_code == 200, response.text
    return basic("team-app-ci", response.json()["passwords"][0]["value"])


def test_repository_token_pushes_to_its_repository(setup: Setup, repo_token: dict[str, str]) -> None:
    response = setup.client.push("team/app", "v1", small_image("team"), repo_token)
    assert response.status_code == 201, response.text


def test_repository_token_pulls_its_repository(setup: Setup, repo_token: dict[str, str]) -> None:
    pushed = setup.client.push("team/app", "pulled", small_image("pulled"), setup.admin)
    assert pushed.status_code == 201
    response = setup.client.manifest("team/app", "pulled", repo_token)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == pushed.headers["Docker-Content-Digest"]


@pytest.mark.parametrize("operation", ["pull", "push"])
def test_repository_token_is_denied_elsewhere(
    setup: Setup, repo_token: dict[str, str], operation: str
) -> None:
    if operation == "pull":
        response = setup.client.manifest("base", "v1", repo_token)
    else:
        response = setup.client.push("team/other", "v1", small_image("x"), repo_token)
    assert response.status_code == 403
    assert response.json() == DENIED_BODY


def test_repository_token_via_token_endpoint(setup: Setup, repo_token: dict[str, str]) -> None:
    token = setup.client.access_token("repository:team/app:pull", "repository:base:pull", headers=repo_token)
    assert jwt_payload(token)["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull"]},
        {"type": "repository", "name": "base", "actions": []},
    ]


def test_disabled_token_is_refused(raw: RawArm, setup: Setup) -> None:
    put_token(raw, setup.registry, "switched-off", "_repositories_pull")
    response = raw.request(
        "POST",
        f"{setup.registry.id}/generateCredentials",
        api_version=API,
        json={"tokenId": f"{setup.registry.id}/tokens/switched-off"},
    )
    headers = basic("switched-off", response.json()["passwords"][0]["value"])
    assert setup.client.manifest("base", "v1", headers).status_code == 200
    put_token(raw, setup.registry, "switched-off", "_repositories_pull", status="disabled")
    response = setup.client.manifest("base", "v1", headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert setup.client.token_response("repository:base:pull", headers=headers).status_code == 401


# -- Entra token exchange and refresh tokens ----------------------------------------------------------------


@pytest.fixture(scope="module")
def puller(raw: RawArm, setup: Setup, principals: Callable[[], Principal]) -> Principal:
    """A service principal with AcrPull on the registry."""
    principal = principals()
    assign_role(raw, setup.registry.id, "AcrPull", principal.object_id)
    return principal


@pytest.fixture(scope="module")
def refresh_token(raw: RawArm, setup: Setup, puller: Principal) -> str:
    aad = fetch_token(raw.server, puller.app_id, puller.secret, scope=MANAGEMENT)
    response = setup.client.exchange(aad, raw.server.tenant_id)
    assert response.status_code == 200, response.text
    return str(response.json()["refresh_token"])


@pytest.mark.parametrize(
    "scope",
    [
        "https://management.azure.com/.default",
        "https://management.core.windows.net/.default",
        "https://containerregistry.azure.net/.default",
    ],
)
def test_exchange_then_refresh_then_pull(raw: RawArm, setup: Setup, puller: Principal, scope: str) -> None:
    aad = fetch_token(raw.server, puller.app_id, puller.secret, scope=scope)
    exchanged = setup.client.exchange(aad)
    assert exchanged.status_code == 200, exchanged.text
    refreshed = setup.client.refreshed(exchanged.json()["refresh_token"], "repository:base:pull")
    assert refreshed.status_code == 200, refreshed.text
    response = setup.client.manifest("base", "v1", bearer(refreshed.json()["access_token"]))
    assert response.status_code == 200


def test_exchange_refuses_another_audience(raw: RawArm, setup: Setup, puller: Principal) -> None:
    aad = fetch_token(raw.server, puller.app_id, puller.secret, scope="https://graph.microsoft.com/.default")
    response = setup.client.exchange(aad)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_exchange_refuses_a_forged_token(setup: Setup) -> None:
    response = setup.client.exchange("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    assert response.status_code == 401


def test_exchange_refuses_unknown_grant(raw: RawArm, setup: Setup, puller: Principal) -> None:
    aad = fetch_token(raw.server, puller.app_id, puller.secret, scope=MANAGEMENT)
    response = setup.client.http.post(
        "/oauth2/exchange",
        data={
            "grant_type": "client_credentials",
            "service": setup.registry.login_server,
            "access_token": aad,
        },
    )
    assert response.status_code == 400


def test_refresh_token_payload_is_plain_base64(setup: Setup, refresh_token: str) -> None:
    payload = refresh_token.split(".")[1]
    assert "-" not in payload
    assert "_" not in payload
    claims = jwt_payload(refresh_token)  # plain base64.b64decode, as azure-containerregistry does
    assert claims["grant_type"] == "refresh_token"
    assert claims["iss"] == "Azure Container Registry"
    assert claims["aud"] == setup.registry.login_server
    assert claims["exp"] - claims["iat"] == 3 * 3600
    assert base64.b64decode(payload) == base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))


def test_refresh_token_for_multiple_scopes(setup: Setup, refresh_token: str) -> None:
    response = setup.client.refreshed(refresh_token, "repository:base:pull", "repository:base:push")
    assert response.status_code == 200, response.text
    assert jwt_payload(response.json()["access_token"])["access"] == [
        {"type": "repository", "name": "base", "actions": ["pull"]},
        {"type": "repository", "name": "base", "actions": []},
    ]


def test_refresh_token_of_another_registry_is_refused(raw: RawArm, setup: Setup, refresh_token: str) -> None:
    other = create_registry(raw, setup.group, sku="Basic")
    with LoginServer(other.login_server, raw.server.ca_path) as client:
        response = client.refreshed(refresh_token, "repository:base:pull")
    assert response.status_code == 401


def test_null_guid_with_refresh_token_on_v2(setup: Setup, refresh_token: str) -> None:
    response = setup.client.manifest("base", "v1", basic(NULL_GUID, refresh_token))
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == setup.base_digest


def test_null_guid_with_refresh_token_at_token_endpoint(setup: Setup, refresh_token: str) -> None:
    token = setup.client.access_token("repository:base:pull", headers=basic(NULL_GUID, refresh_token))
    assert setup.client.manifest("base", "v1", bearer(token)).status_code == 200


def test_null_guid_keeps_the_principals_rights(setup: Setup, refresh_token: str) -> None:
    response = setup.client.push("base", "v9", small_image("v9"), basic(NULL_GUID, refresh_token))
    assert response.status_code == 403
    assert response.json() == DENIED_BODY


def test_null_guid_with_garbage_is_unauthorized(setup: Setup) -> None:
    response = setup.client.manifest("base", "v1", basic(NULL_GUID, "not-a-token"))
    assert response.status_code == 401


# -- anonymous pull ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anonymous(raw: RawArm, setup: Setup) -> Iterator[LoginServer]:
    """A Standard registry with anonymous pull enabled, holding ``pub:v1``."""
    registry = create_registry(
        raw, setup.group, sku="Standard", adminUserEnabled=True, anonymousPullEnabled=True
    )
    admin = basic(registry.name, admin_password(raw, registry))
    client = LoginServer(registry.login_server, raw.server.ca_path)
    assert client.push("pub", "v1", small_image("pub"), admin).status_code == 201
    yield client
    client.close()


def test_anonymous_token_when_enabled(anonymous: LoginServer) -> None:
    token = anonymous.access_token("repository:pub:pull")
    assert anonymous.manifest("pub", "v1", bearer(token)).status_code == 200


def test_anonymous_password_grant_when_enabled(anonymous: LoginServer) -> None:
    response = anonymous.http.post(
        "/oauth2/token",
        data={"grant_type": "password", "service": anonymous.login_server, "scope": "repository:pub:pull"},
    )
    assert response.status_code == 200, response.text
    assert anonymous.manifest("pub", "v1", bearer(response.json()["access_token"])).status_code == 200


def test_anonymous_cannot_push_when_enabled(anonymous: LoginServer) -> None:
    token = anonymous.access_token("repository:pub:pull,push")
    assert jwt_payload(token)["access"] == [{"type": "repository", "name": "pub", "actions": ["pull"]}]
    assert anonymous.push("pub", "v2", small_image("nope"), bearer(token)).status_code == 403


@pytest.mark.parametrize("grant", ["get", "password"])
def test_anonymous_token_refused_when_disabled(setup: Setup, grant: str) -> None:
    if grant == "get":
        response = setup.client.token_response("repository:base:pull")
    else:
        response = setup.client.http.post(
            "/oauth2/token",
            data={
                "grant_type": "password",
                "service": setup.registry.login_server,
                "scope": "repository:base:pull",
            },
        )
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
