"""The registry firewall: public network access, IP rules (decided on the TCP peer address), and the
trusted-services bypass, which only the in-process platform channel can use.

Different peer addresses come from binding the client socket to other loopback addresses
(127.0.0.0/8 all reach the server's 127.0.0.1 on Linux)."""

from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from moorage.app import Moorage
from moorage.config import Settings
from moorage.server import running
from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_http import (
    NULL_GUID,
    LoginServer,
    basic,
    bearer,
    create_principal,
    delete_principal,
    firewall_body,
    small_image,
)
from tests.api.registry_support import TestRegistry as Registry
from tests.api.registry_support import admin_password, create_registry, update_registry
from tests.images import Image

# -- over TCP, against the session server -------------------------------------------------------------

ALLOWED = "127.0.0.2"
DENIED = "127.0.0.3"
CIDR = "127.0.8.0/29"  # 127.0.8.0 - 127.0.8.7


@dataclass
class Firewalled:
    registry: Registry
    admin: dict[str, str]
    ca_path: str

    def client(self, source: str) -> LoginServer:
        return LoginServer(self.registry.login_server, self.ca_path, local_address=source)

    def pull(self, source: str, headers: dict[str, str] | None = None) -> httpx.Response:
        with self.client(source) as client:
            return client.manifest("app", "v1", self.admin if headers is None else headers)


@pytest.fixture(scope="module")
def group(raw: RawArm) -> Iterator[str]:
    name = f"rg-fw-{uuid.uuid4().hex[:8]}"
    path = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{name}"
    response = raw.request("PUT", path, json={"location": "westus"})
    assert response.status_code in (200, 201), response.text
    yield name
    raw.request("DELETE", path)


def firewalled(raw: RawArm, group: str, **properties: Any) -> Firewalled:
    """A Premium registry (admin enabled) holding ``app:v1``, then restricted by ``properties``."""
    registry = create_registry(raw, group, adminUserEnabled=True)
    admin = basic(registry.name, admin_password(raw, registry))
    with LoginServer(registry.login_server, raw.server.ca_path) as client:
        assert client.push("app", "v1", small_image("app"), admin).status_code == 201
    update_registry(raw, registry, **properties)
    return Firewalled(registry, admin, raw.server.ca_path)


def rules(*values: str, default: str = "Deny") -> dict[str, Any]:
    return {"defaultAction": default, "ipRules": [{"action": "Allow", "value": v} for v in values]}


@pytest.fixture(scope="module")
def deny(raw: RawArm, group: str) -> Firewalled:
    """defaultAction Deny, allowing 127.0.0.2 and 127.0.8.0/29."""
    return firewalled(raw, group, networkRuleSet=rules(ALLOWED, CIDR))


def assert_firewall_denied(response: httpx.Response, ip: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == firewall_body(ip)


def test_allowed_ip_pulls(deny: Firewalled) -> None:
    response = deny.pull(ALLOWED)
    assert response.status_code == 200, response.text


def test_denied_ip_is_refused(deny: Firewalled) -> None:
    assert_firewall_denied(deny.pull(DENIED), DENIED)


def test_denied_body_is_acr_text(deny: Firewalled) -> None:
    response = deny.pull(DENIED)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["errors"][0]["message"] == (
        f"client with IP '{DENIED}' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."
    )


def test_denied_before_authentication(deny: Firewalled) -> None:
    """An anonymous client from a denied address gets 403, not the 401 challenge."""
    with deny.client(DENIED) as client:
        response = client.http.get("/v2/")
    assert_firewall_denied(response, DENIED)
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    ("source", "allowed"),
    [("127.0.8.0", True), ("127.0.8.7", True), ("127.0.8.8", False), ("127.0.7.255", False)],
    ids=["first", "last", "after", "before"],
)
def test_cidr_edges(deny: Firewalled, source: str, allowed: bool) -> None:
    response = deny.pull(source)
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert_firewall_denied(response, source)


@pytest.mark.parametrize("endpoint", ["v2", "manifest", "token", "exchange", "catalog"])
def test_every_endpoint_is_firewalled(deny: Firewalled, endpoint: str) -> None:
    with deny.client(DENIED) as client:
        if endpoint == "v2":
            response = client.http.get("/v2/", headers=deny.admin)
        elif endpoint == "manifest":
            response = client.manifest("app", "v1", deny.admin)
        elif endpoint == "token":
            response = client.token_response("repository:app:pull", headers=deny.admin)
        elif endpoint == "exchange":
            response = client.exchange("not-even-a-token")
        else:
            response = client.http.get("/v2/_catalog", headers=deny.admin)
    assert_firewall_denied(response, DENIED)


def test_token_endpoint_allowed_from_allowed_ip(deny: Firewalled) -> None:
    with deny.client(ALLOWED) as client:
        token = client.access_token("repository:app:pull", headers=deny.admin)
        assert client.manifest("app", "v1", bearer(token)).status_code == 200


def test_token_from_allowed_ip_is_useless_from_denied_ip(deny: Firewalled) -> None:
    with deny.client(ALLOWED) as client:
        token = client.access_token("repository:app:pull", headers=deny.admin)
    assert_firewall_denied(deny.pull(DENIED, bearer(token)), DENIED)


def test_service_principal_does_not_bypass(raw: RawArm, deny: Firewalled) -> None:
    """Owner on the subscription (the bootstrap principal) is still judged by its address."""
    headers = basic(raw.server.client_id, raw.server.client_secret)
    assert_firewall_denied(deny.pull(DENIED, headers), DENIED)
    assert deny.pull(ALLOWED, headers).status_code == 200


@pytest.mark.parametrize(
    ("source", "forwarded", "status"),
    [(DENIED, ALLOWED, 403), (DENIED, f"{ALLOWED}, {ALLOWED}", 403), (ALLOWED, DENIED, 200)],
    ids=["spoof-allowed", "spoof-chain", "allowed-peer-forwarding-denied"],
)
def test_x_forwarded_for_is_ignored(deny: Firewalled, source: str, forwarded: str, status: int) -> None:
    response = deny.pull(source, {**deny.admin, "X-Forwarded-For": forwarded})
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json() == firewall_body(source)


def test_default_allow_admits_everyone(raw: RawArm, group: str) -> None:
    open_registry = firewalled(raw, group, networkRuleSet=rules(ALLOWED, default="Allow"))
    assert open_registry.pull(DENIED).status_code == 200


def test_rule_changes_apply_immediately(raw: RawArm, group: str) -> None:
    target = firewalled(raw, group, networkRuleSet=rules(ALLOWED))
    assert_firewall_denied(target.pull(DENIED), DENIED)
    update_registry(raw, target.registry, networkRuleSet=rules(ALLOWED, f"{DENIED}/32"))
    assert target.pull(DENIED).status_code == 200
    update_registry(raw, target.registry, networkRuleSet=rules(ALLOWED))
    assert_firewall_denied(target.pull(DENIED), DENIED)


@pytest.mark.parametrize("source", [ALLOWED, DENIED, "127.0.0.1"])
def test_public_network_access_disabled_denies_everyone(raw: RawArm, group: str, source: str) -> None:
    target = firewalled(
        raw, group, networkRuleSet=rules(ALLOWED, "127.0.0.1"), publicNetworkAccess="Disabled"
    )
    assert_firewall_denied(target.pull(source), source)


def test_public_network_access_disabled_even_with_default_allow(raw: RawArm, group: str) -> None:
    target = firewalled(raw, group, publicNetworkAccess="Disabled")
    assert_firewall_denied(target.pull(ALLOWED), ALLOWED)


def test_reenabling_public_access_restores_the_rules(raw: RawArm, group: str) -> None:
    target = firewalled(raw, group, networkRuleSet=rules(ALLOWED), publicNetworkAccess="Disabled")
    assert_firewall_denied(target.pull(ALLOWED), ALLOWED)
    update_registry(raw, target.registry, publicNetworkAccess="Enabled")
    assert target.pull(ALLOWED).status_code == 200
    assert_firewall_denied(target.pull(DENIED), DENIED)


def test_entra_exchange_from_denied_ip(raw: RawArm, deny: Firewalled) -> None:
    principal = create_principal(raw)
    try:
        aad = fetch_token(raw.server, principal.app_id, principal.secret)
        with deny.client(DENIED) as client:
            response = client.exchange(aad)
    finally:
        delete_principal(raw, principal)
    assert_firewall_denied(response, DENIED)


# -- the platform channel, in process ------------------------------------------------------------------

API = "2025-04-01"
MI_API = "2023-01-31"
ROLE_API = "2022-04-01"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
MANAGEMENT = "https://management.azure.com/"


@dataclass
class InProcess:
    moorage: Moorage
    arm: httpx.AsyncClient  # HTTPS to the main endpoint, as the bootstrap principal
    ca_path: str
    registry_id: str
    login: str
    identity_id: str
    admin: dict[str, str]

    @property
    def platform_address(self) -> str:
        return self.moorage.settings.platform_address

    async def patch_registry(self, **properties: Any) -> None:
        response = await self.arm.patch(
            self.registry_id, params={"api-version": API}, json={"properties": properties}
        )
        assert response.status_code == 200, response.text

    async def mi_token(self) -> str:
        issued = await self.moorage.identity.token_for_managed_identity(self.identity_id, MANAGEMENT)
        return issued.token

    def tcp(self, source: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(verify=_ssl(self.ca_path), local_address=source)
        return httpx.AsyncClient(base_url=f"https://{self.login}", transport=transport, timeout=30)

    def platform(self) -> httpx.AsyncClient:
        return self.moorage.platform_client(base_url=f"https://{self.login}", timeout=30)


def _ssl(ca_path: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_path)


async def exchange_and_pull(client: httpx.AsyncClient, login: str, aad_token: str) -> httpx.Response:
    """The ACR flow: Entra token → refresh token → access token → manifest. The first failure, or
    the manifest response."""
    exchanged = await client.post(
        "/oauth2/exchange", data={"grant_type": "access_token", "service": login, "access_token": aad_token}
    )
    if exchanged.status_code != 200:
        return exchanged
    token = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "service": login,
            "refresh_token": exchanged.json()["refresh_token"],
            "scope": "repository:app:pull",
        },
    )
    if token.status_code != 200:
        return token
    return await client.get(
        "/v2/app/manifests/v1",
        headers={
            **bearer(token.json()["access_token"]),
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
    )


async def push_async(client: httpx.AsyncClient, headers: dict[str, str], image: Image) -> None:
    for blob in image.blobs:
        started = await client.post("/v2/app/blobs/uploads/", headers=headers)
        assert started.status_code == 202, started.text
        done = await client.put(
            started.headers["Location"], params={"digest": blob.digest}, content=blob.data, headers=headers
        )
        assert done.status_code == 201, done.text
    put = await client.put(
        "/v2/app/manifests/v1",
        content=image.manifest.data,
        headers={**headers, "Content-Type": image.manifest.media_type},
    )
    assert put.status_code == 201, put.text


@contextlib.asynccontextmanager
async def provisioned(settings: Settings) -> AsyncIterator[InProcess]:
    """An in-process moorage (this event loop) with the platform test's resources."""
    async with running(settings) as run:
        state = await _provision(run.moorage, run.port, settings)
        try:
            yield state
        finally:
            await state.arm.aclose()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def inprocess(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcess]:
    async with provisioned(Settings(home=tmp_path_factory.mktemp("inproc") / "home", port=0)) as state:
        yield state


async def _provision(moorage: Moorage, port: int, settings: Settings) -> InProcess:
    """Through ARM over HTTPS: a group, a Premium registry (admin enabled) holding ``app:v1``, a
    user-assigned identity with AcrPull on it; then the registry denies every address."""
    boot = moorage.bootstrap
    ca = str(settings.ca_path)
    arm = httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=_ssl(ca), timeout=30)
    token = await arm.post(
        f"/{boot.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": boot.client_id,
            "client_secret": boot.client_secret,
            "scope": "https://management.azure.com/.default",
        },
    )
    assert token.status_code == 200, token.text
    arm.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    group = f"/subscriptions/{boot.subscription_id}/resourcegroups/rg-platform"
    assert (
        await arm.put(group, params={"api-version": "2024-11-01"}, json={"location": "westus"})
    ).is_success
    registry_id = f"{group}/providers/Microsoft.ContainerRegistry/registries/platformreg"
    created = await arm.put(
        registry_id,
        params={"api-version": API},
        json={
            "location": "westus",
            "sku": {"name": "Premium"},
            "properties": {"adminUserEnabled": True, "networkRuleSet": rules("127.0.0.1/32")},
        },
    )
    assert created.status_code in (200, 201), created.text
    login = created.json()["properties"]["loginServer"]
    creds = await arm.post(f"{registry_id}/listCredentials", params={"api-version": API})
    admin = basic("platformreg", creds.json()["passwords"][0]["value"])
    identity_id = f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"
    identity = await arm.put(identity_id, params={"api-version": MI_API}, json={"location": "westus"})
    assert identity.status_code in (200, 201), identity.text
    assignment = await arm.put(
        f"{registry_id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        params={"api-version": ROLE_API},
        json={
            "properties": {
                "roleDefinitionId": f"/subscriptions/{boot.subscription_id}/providers/"
                f"Microsoft.Authorization/roleDefinitions/{ACR_PULL}",
                "principalId": identity.json()["properties"]["principalId"],
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert assignment.status_code == 201, assignment.text
    state = InProcess(moorage, arm, ca, registry_id, login, identity_id, admin)
    async with state.tcp() as client:
        await push_async(client, admin, small_image("platform"))
    await state.patch_registry(networkRuleSet=rules())  # Deny, no rules at all
    return state


# The in-process server lives in the module's event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")


@in_module_loop
async def test_platform_pull_with_managed_identity_bypasses(inprocess: InProcess) -> None:
    await inprocess.patch_registry(networkRuleBypassOptions="AzureServices")
    async with inprocess.platform() as client:
        response = await exchange_and_pull(client, inprocess.login, await inprocess.mi_token())
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"


@in_module_loop
async def test_managed_identity_token_over_tcp_is_denied(inprocess: InProcess) -> None:
    await inprocess.patch_registry(networkRuleBypassOptions="AzureServices")
    async with inprocess.tcp() as client:
        response = await exchange_and_pull(client, inprocess.login, await inprocess.mi_token())
    assert_firewall_denied(response, "127.0.0.1")


@in_module_loop
async def test_platform_pull_denied_when_bypass_is_none(inprocess: InProcess) -> None:
    await inprocess.patch_registry(networkRuleBypassOptions="None")
    try:
        async with inprocess.platform() as client:
            response = await exchange_and_pull(client, inprocess.login, await inprocess.mi_token())
    finally:
        await inprocess.patch_registry(networkRuleBypassOptions="AzureServices")
    assert_firewall_denied(response, inprocess.platform_address)
    assert inprocess.platform_address == "100.64.0.1"


@in_module_loop
@pytest.mark.parametrize("who", ["service-principal", "admin"])
async def test_other_credentials_on_the_platform_channel_are_denied(inprocess: InProcess, who: str) -> None:
    boot = inprocess.moorage.bootstrap
    headers = basic(boot.client_id, boot.client_secret) if who == "service-principal" else inprocess.admin
    async with inprocess.platform() as client:
        token = await client.get(
            "/oauth2/token",
            params={"service": inprocess.login, "scope": "repository:app:pull"},
            headers=headers,
        )
        direct = await client.get("/v2/app/manifests/v1", headers=headers)
    assert_firewall_denied(token, inprocess.platform_address)
    assert_firewall_denied(direct, inprocess.platform_address)


@in_module_loop
async def test_service_principal_entra_token_on_the_platform_channel_is_denied(inprocess: InProcess) -> None:
    boot = inprocess.moorage.bootstrap
    aad = await inprocess.arm.post(
        f"/{boot.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": boot.client_id,
            "client_secret": boot.client_secret,
            "scope": "https://management.azure.com/.default",
        },
    )
    async with inprocess.platform() as client:
        response = await exchange_and_pull(client, inprocess.login, aad.json()["access_token"])
    assert_firewall_denied(response, inprocess.platform_address)


@in_module_loop
async def test_platform_refresh_token_is_useless_over_tcp(inprocess: InProcess) -> None:
    async with inprocess.platform() as client:
        exchanged = await client.post(
            "/oauth2/exchange",
            data={
                "grant_type": "access_token",
                "service": inprocess.login,
                "access_token": await inprocess.mi_token(),
            },
        )
    assert exchanged.status_code == 200, exchanged.text
    async with inprocess.tcp() as client:
        response = await client.get(
            "/v2/app/manifests/v1", headers=basic(NULL_GUID, exchanged.json()["refresh_token"])
        )
    assert_firewall_denied(response, "127.0.0.1")


async def manifest_from(state: InProcess, source: str, forwarded: str | None = None) -> httpx.Response:
    headers = {**state.admin, "Accept": "application/vnd.oci.image.manifest.v1+json"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    async with state.tcp(source) as client:
        return await client.get("/v2/app/manifests/v1", headers=headers)


async def test_audit_mode_logs_instead_of_denying(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", port=0, registry_firewall_audit=True)
    async with provisioned(settings) as state:
        with capture_logs() as logs:
            response = await manifest_from(state, "127.0.0.2")
    assert response.status_code == 200, response.text
    audits = [e for e in logs if e["event"].startswith("firewall audit")]
    assert len(audits) >= 1, logs
    assert audits[0]["peer"] == "127.0.0.2"
    assert audits[0]["reason"] == "default-deny"
    assert audits[0]["log_level"] == "warning"


async def test_x_forwarded_for_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", port=0, trusted_proxies=("127.0.0.5",))
    async with provisioned(settings) as state:
        await state.patch_registry(networkRuleSet=rules("10.1.2.3"))
        via_proxy = await manifest_from(state, "127.0.0.5", "10.1.2.3")
        denied_via_proxy = await manifest_from(state, "127.0.0.5", "10.9.9.9")
        spoofed = await manifest_from(state, "127.0.0.6", "10.1.2.3")
        proxy_itself = await manifest_from(state, "127.0.0.5")
    assert via_proxy.status_code == 200, via_proxy.text
    assert_firewall_denied(denied_via_proxy, "10.9.9.9")
    assert_firewall_denied(spoofed, "127.0.0.6")
    assert_firewall_denied(proxy_itself, "127.0.0.5")
