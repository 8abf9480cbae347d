"""Official Azure SDK clients bound to the session server."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.conftest import sdk_kwargs
from tests.server import RunningServer


def credential_for(
    server: RunningServer, client_id: str, secret: str, tenant: str | None = None
) -> ClientSecretCredential:
    return ClientSecretCredential(
        tenant or server.tenant_id,
        client_id,
        secret,
        authority=server.endpoint,
        disable_instance_discovery=True,
        connection_verify=server.ca_path,
    )


@pytest.fixture(scope="session")
def credential(server: RunningServer) -> Iterator[ClientSecretCredential]:
    cred = credential_for(server, server.client_id, server.client_secret)
    with cred:
        yield cred


@pytest.fixture(scope="session")
def resources(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[ResourceManagementClient]:
    with ResourceManagementClient(credential, server.subscription_id, **sdk_kwargs(server)) as client:
        yield client


@pytest.fixture(scope="session")
def msi(server: RunningServer, credential: ClientSecretCredential) -> Iterator[ManagedServiceIdentityClient]:
    with ManagedServiceIdentityClient(credential, server.subscription_id, **sdk_kwargs(server)) as client:
        yield client


@pytest.fixture(scope="session")
def authorization(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[AuthorizationManagementClient]:
    with AuthorizationManagementClient(credential, server.subscription_id, **sdk_kwargs(server)) as client:
        yield client


@pytest.fixture
def rg_name() -> str:
    return f"rg-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def group(resources: ResourceManagementClient, rg_name: str) -> Iterator[Any]:
    """A resource group of the test's own, deleted afterwards."""
    created = resources.resource_groups.create_or_update(rg_name, {"location": "westus"})
    yield created
    if resources.resource_groups.check_existence(rg_name):
        resources.resource_groups.begin_delete(rg_name).result()


def trust(server: RunningServer) -> ssl.SSLContext:
    """An SSL context that trusts the server's CA (and nothing else)."""
    return ssl.create_default_context(cafile=server.ca_path)


class RawArm:
    """Plain HTTPS to the server, for asserting exact statuses, headers and bodies."""

    def __init__(self, server: RunningServer, token: str) -> None:
        self.server = server
        self.token = token
        self.http = httpx.Client(base_url=server.endpoint, verify=trust(server), timeout=30)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        api_version: str | None = "2024-11-01",
        **kw: Any,
    ) -> httpx.Response:
        params = dict(kw.pop("params", {}) or {})
        if api_version:
            params["api-version"] = api_version
        headers = dict(kw.pop("headers", {}) or {})
        use = self.token if token is None else token
        if use:
            headers.setdefault("Authorization", f"Bearer {use}")
        return self.http.request(method, path, params=params, headers=headers, **kw)


def fetch_token(
    server: RunningServer,
    client_id: str,
    secret: str,
    scope: str = "https://management.azure.com/.default",
    tenant: str | None = None,
) -> str:
    response = httpx.post(
        f"{server.endpoint}/{tenant or server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": scope,
        },
        verify=trust(server),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def raw(server: RunningServer) -> Iterator[RawArm]:
    arm = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with arm.http:
        yield arm
