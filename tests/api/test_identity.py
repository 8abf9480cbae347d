"""The Entra-compatible endpoints: discovery, JWKS, and the tokens they issue."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from azure.identity import ClientSecretCredential

from tests.api.conftest import credential_for, trust
from tests.server import RunningServer


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Any:
    with httpx.Client(base_url=server.endpoint, verify=trust(server)) as client:
        yield client


def decode(server: RunningServer, http: httpx.Client, token: str, audience: str) -> dict[str, Any]:
    """Verify ``token`` against the published JWKS, as a relying party would."""
    config = http.get(f"/{server.tenant_id}/v2.0/.well-known/openid-configuration").json()
    jwks = http.get(config["jwks_uri"]).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=config["issuer"]
    )
    return claims


def test_openid_configuration(server: RunningServer, http: httpx.Client) -> None:
    body = http.get(f"/{server.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert body["token_endpoint"] == f"{server.endpoint}/{server.tenant_id}/oauth2/v2.0/token"
    assert body["authorization_endpoint"].startswith(server.endpoint)
    assert body["issuer"] == f"{server.endpoint}/{server.tenant_id}/v2.0"
    assert body["jwks_uri"] == f"{server.endpoint}/{server.tenant_id}/discovery/v2.0/keys"


def test_jwks_publishes_rsa_signing_keys(server: RunningServer, http: httpx.Client) -> None:
    keys = http.get(f"/{server.tenant_id}/discovery/v2.0/keys").json()["keys"]
    assert keys
    assert {(k["kty"], k["alg"], k["use"]) for k in keys} == {("RSA", "RS256", "sig")}


def test_v2_token_claims(server: RunningServer, http: httpx.Client) -> None:
    response = http.post(
        f"/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "scope": "https://management.azure.com/.default",
        },
    )
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 3600
    # The resource is the scope without "/.default" (ARM accepts it with and without a slash).
    claims = decode(server, http, body["access_token"], "https://management.azure.com")
    assert claims["tid"] == server.tenant_id
    assert claims["appid"] == server.client_id
    assert claims["idtyp"] == "app"
    assert claims["nbf"] <= time.time() < claims["exp"]
    assert "xms_mirid" not in claims


def test_cli_style_double_slash_scope(server: RunningServer, http: httpx.Client) -> None:
    response = http.post(
        f"/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "scope": "https://management.core.windows.net//.default",
            "claims": '{"access_token":{"xms_cc":{"values":["CP1"]}}}',
            "client_info": "1",
        },
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://management.core.windows.net/"


def test_v1_token_endpoint(server: RunningServer, http: httpx.Client) -> None:
    response = http.post(
        f"/{server.tenant_id}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "resource": "https://management.core.windows.net/",
        },
    )
    body = response.json()
    assert body["resource"] == "https://management.core.windows.net/"
    assert int(body["expires_on"]) > time.time()
    decode(server, http, body["access_token"], "https://management.core.windows.net/")


def test_azure_identity_credential_gets_a_token(server: RunningServer) -> None:
    with credential_for(server, server.client_id, server.client_secret) as credential:
        assert isinstance(credential, ClientSecretCredential)
        token = credential.get_token("https://management.azure.com/.default")
    assert token.expires_on > time.time()
    assert jwt.decode(token.token, options={"verify_signature": False})["oid"]


def test_cloud_metadata_is_one_object(server: RunningServer, http: httpx.Client) -> None:
    body = http.get("/metadata/endpoints", params={"api-version": "2022-09-01"}).json()
    assert body["resourceManager"] == server.endpoint + "/"
    assert body["authentication"]["loginEndpoint"] == server.endpoint
    assert "https://management.core.windows.net/" in body["authentication"]["audiences"]
