"""Token security of the ARM edge and the token endpoint, secret hygiene, and bad input.

Every rejection is checked on a real ARM GET with its exact status, ARM error code and (on 401)
the ``WWW-Authenticate: Bearer`` challenge. Crafted tokens are built here: forged ones with a key
of our own, "real" ones with the server's signing key read from its data directory, so that each
test isolates one check of the verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import stat
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.conftest import RawArm, credential_for, fetch_token
from tests.server import RunningServer

RG_API = "2024-11-01"
MSI_API = "2024-11-30"
AUTHZ_API = "2022-04-01"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
MANAGEMENT = "https://management.azure.com/"


# -- token crafting ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def trusting(server: RunningServer) -> ssl.SSLContext:
    """TLS settings that trust the server's local CA."""
    return ssl.create_default_context(cafile=server.ca_path)


def unverified_claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def server_key(server: RunningServer) -> rsa.RSAPrivateKey:
    """The server's real token signing key (tests may read it from the data directory)."""
    key = serialization.load_pem_private_key((server.home / "keys" / "signing-0001.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


class TokenForge:
    """Builds access tokens whose claims look like the server's own, for the bootstrap principal."""

    def __init__(self, server: RunningServer, real_token: str) -> None:
        self.server = server
        self.real_claims = unverified_claims(real_token)
        self.kid = str(jwt.get_unverified_header(real_token)["kid"])
        self.real_key = server_key(server)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": MANAGEMENT,
            "iss": f"{self.server.endpoint}/{self.server.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "appid": self.real_claims["appid"],
            "azp": self.real_claims["appid"],
            "idtyp": "app",
            "oid": self.real_claims["oid"],
            "sub": self.real_claims["oid"],
            "tid": self.server.tenant_id,
            "ver": "2.0",
        }
        claims.update(overrides)
        return claims

    def sign(self, claims: dict[str, Any], key: rsa.RSAPrivateKey | None = None) -> str:
        return jwt.encode(claims, key or self.real_key, algorithm="RS256", headers={"kid": self.kid})

    def real(self, **overrides: Any) -> str:
        """Signed with the server's own key: only the overridden claims can make it fail."""
        return self.sign(self.claims(**overrides))


@pytest.fixture(scope="module")
def forge(server: RunningServer, raw: RawArm) -> TokenForge:
    return TokenForge(server, raw.token)


@pytest.fixture(scope="module")
def foreign_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def groups_path(server: RunningServer) -> str:
    return f"/subscriptions/{server.subscription_id}/resourcegroups"


def assert_unauthenticated(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'authorization_uri="' in challenge


# -- the ARM edge: what it accepts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        ("https://management.azure.com/.default", "https://management.azure.com"),
        ("https://management.core.windows.net//.default", "https://management.core.windows.net/"),
    ],
)
def test_both_management_audiences_are_accepted(
    server: RunningServer, raw: RawArm, groups_path: str, scope: str, audience: str
) -> None:
    token = fetch_token(server, server.client_id, server.client_secret, scope=scope)
    assert unverified_claims(token)["aud"] == audience
    assert raw.request("GET", groups_path, token=token).status_code == 200


@pytest.mark.parametrize(
    "audience",
    [
        "https://management.azure.com/",
        "https://management.azure.com",
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
    ],
)
def test_hand_signed_token_with_the_real_key_is_accepted(
    raw: RawArm, forge: TokenForge, groups_path: str, audience: str
) -> None:
    # The control for the crafted-token tests below: the forge's claims are otherwise acceptable.
    assert raw.request("GET", groups_path, token=forge.real(aud=audience)).status_code == 200


def test_token_expired_within_the_leeway_is_accepted(
    raw: RawArm, forge: TokenForge, groups_path: str
) -> None:
    now = int(time.time())
    token = forge.real(iat=now - 3600, nbf=now - 3600, exp=now - 20)
    assert raw.request("GET", groups_path, token=token).status_code == 200


# -- the ARM edge: missing or malformed credentials ---------------------------------------------------


def test_missing_authorization_header_is_rejected(raw: RawArm, groups_path: str) -> None:
    response = raw.request("GET", groups_path, token="")
    assert "authorization" not in response.request.headers
    assert_unauthenticated(response, "AuthenticationFailed")


@pytest.mark.parametrize("header", ["Basic x", "Bearer", "Basic dXNlcjpwYXNz", "Token abc.def.ghi", "bearer"])
def test_malformed_authorization_header_is_rejected(raw: RawArm, groups_path: str, header: str) -> None:
    response = raw.request("GET", groups_path, token="", headers={"Authorization": header})
    assert_unauthenticated(response, "AuthenticationFailed")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0",
        b64url(b"[1,2]") + "." + b64url(b"{}") + ".sig",
        b64url(b"\xff\xfe") + "." + b64url(b"\xff") + ".",
        "x" * 4000,
    ],
    ids=["word", "three-dots", "two-parts", "array-header", "binary-parts", "long"],
)
def test_garbage_token_is_rejected(raw: RawArm, groups_path: str, token: str) -> None:
    response = raw.request("GET", groups_path, token=token)
    assert_unauthenticated(response, "InvalidAuthenticationToken")


# -- the ARM edge: forged tokens ----------------------------------------------------------------------


def test_token_signed_by_another_key_is_rejected(
    raw: RawArm, forge: TokenForge, foreign_key: rsa.RSAPrivateKey, groups_path: str
) -> None:
    token = forge.sign(forge.claims(), key=foreign_key)
    assert jwt.get_unverified_header(token)["kid"] == forge.kid
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


def test_token_with_tampered_claims_is_rejected(raw: RawArm, forge: TokenForge, groups_path: str) -> None:
    header, _, signature = forge.real().split(".")
    tampered = forge.claims(oid=str(uuid.uuid4()))
    token = f"{header}.{b64url_json(tampered)}.{signature}"
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_alg_none_token_is_rejected(
    raw: RawArm, forge: TokenForge, groups_path: str, alg: str
) -> None:
    header = b64url_json({"alg": alg, "typ": "JWT", "kid": forge.kid})
    token = f"{header}.{b64url_json(forge.claims())}."
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


def test_hs256_token_keyed_with_the_public_key_is_rejected(
    raw: RawArm, forge: TokenForge, groups_path: str
) -> None:
    # Algorithm confusion: a verifier that trusts the header's alg would check this HMAC with the
    # (public) RSA key as the secret, and accept it.
    public_pem = forge.real_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64url_json({'alg': 'HS256', 'typ': 'JWT', 'kid': forge.kid})}.{b64url_json(forge.claims())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


def test_token_with_unknown_kid_is_rejected(raw: RawArm, forge: TokenForge, groups_path: str) -> None:
    token = jwt.encode(forge.claims(), forge.real_key, algorithm="RS256", headers={"kid": "not-our-key"})
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


# -- the ARM edge: genuine signatures, wrong claims ---------------------------------------------------


def test_expired_token_is_rejected(raw: RawArm, forge: TokenForge, groups_path: str) -> None:
    now = int(time.time())
    token = forge.real(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    response = raw.request("GET", groups_path, token=token)
    assert_unauthenticated(response, "ExpiredAuthenticationToken")
    assert "expiry" in response.json()["error"]["message"]


def test_token_expired_just_beyond_the_leeway_is_rejected(
    raw: RawArm, forge: TokenForge, groups_path: str
) -> None:
    now = int(time.time())
    token = forge.real(iat=now - 3600, nbf=now - 3600, exp=now - 90)
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "ExpiredAuthenticationToken")


def test_not_yet_valid_token_is_rejected(raw: RawArm, forge: TokenForge, groups_path: str) -> None:
    now = int(time.time())
    token = forge.real(nbf=now + 3600, exp=now + 7200)
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "tid", "oid"])
def test_token_missing_a_required_claim_is_rejected(
    raw: RawArm, forge: TokenForge, groups_path: str, claim: str
) -> None:
    claims = forge.claims()
    del claims[claim]
    token = forge.sign(claims)
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.microsoftonline.com/{tenant}/v2.0",
        "https://evil.example.com/{tenant}/v2.0",
        "{endpoint}/{other}/v2.0",
        "{endpoint}/{tenant}",
    ],
    ids=["entra", "other-host", "other-tenant-path", "v1-shape"],
)
def test_token_with_wrong_issuer_is_rejected(
    server: RunningServer, raw: RawArm, forge: TokenForge, groups_path: str, issuer: str
) -> None:
    iss = issuer.format(endpoint=server.endpoint, tenant=server.tenant_id, other=uuid.uuid4())
    token = forge.real(iss=iss)
    assert_unauthenticated(raw.request("GET", groups_path, token=token), "InvalidAuthenticationToken")


@pytest.mark.parametrize(
    "scope", ["https://graph.microsoft.com/.default", "https://containerregistry.azure.net/.default"]
)
def test_token_for_another_audience_is_rejected(
    server: RunningServer, raw: RawArm, groups_path: str, scope: str
) -> None:
    token = fetch_token(server, server.client_id, server.client_secret, scope=scope)
    response = raw.request("GET", groups_path, token=token)
    assert_unauthenticated(response, "InvalidAuthenticationTokenAudience")


@pytest.fixture(scope="module")
def other_tenant(server: RunningServer, raw: RawArm) -> dict[str, Any]:
    """A second real tenant, created through the directory API, with its administrator's secret."""
    response = raw.http.post(
        "/moorage/directory/tenants",
        json={"displayName": "other"},
        headers={"Authorization": f"Bearer {raw.token}"},
    )
    assert response.status_code == 201, response.text
    body = dict(response.json())
    assert {"tenantId", "appId", "password"} <= body.keys()
    assert body["tenantId"] != server.tenant_id
    return body


def test_token_of_another_tenant_is_rejected(
    server: RunningServer, raw: RawArm, groups_path: str, other_tenant: dict[str, Any]
) -> None:
    token = fetch_token(
        server, other_tenant["appId"], other_tenant["password"], tenant=other_tenant["tenantId"]
    )
    assert unverified_claims(token)["tid"] == other_tenant["tenantId"]
    response = raw.request("GET", groups_path, token=token)
    assert_unauthenticated(response, "InvalidAuthenticationTokenTenant")
    assert f"/{server.tenant_id}" in response.headers["WWW-Authenticate"]


# -- the token endpoint --------------------------------------------------------------------------------


def token_request(server: RunningServer, tenant: str | None = None, **form: str) -> httpx.Response:
    fields = {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "scope": "https://management.azure.com/.default",
    }
    fields.update(form)
    return httpx.post(
        f"{server.endpoint}/{tenant or server.tenant_id}/oauth2/v2.0/token",
        data={k: v for k, v in fields.items() if v is not None},
        verify=trusting(server),
    )


def assert_oauth_error(response: httpx.Response, status: int, error: str, aadsts: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert "access_token" not in body
    if aadsts is not None:
        assert aadsts in body["error_description"]
        assert int(aadsts.removeprefix("AADSTS")) in body["error_codes"]


def test_token_endpoint_rejects_a_wrong_secret(server: RunningServer) -> None:
    response = token_request(server, client_secret="not-the-secret")
    assert_oauth_error(response, 401, "invalid_client", "AADSTS7000215")


def test_token_endpoint_v1_rejects_a_wrong_secret(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.endpoint}/{server.tenant_id}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": server.client_id,
            "client_secret": "not-the-secret",
            "resource": MANAGEMENT,
        },
        verify=trusting(server),
    )
    assert_oauth_error(response, 401, "invalid_client", "AADSTS7000215")


def test_token_endpoint_rejects_an_unknown_client(server: RunningServer) -> None:
    response = token_request(server, client_id=str(uuid.uuid4()))
    assert_oauth_error(response, 400, "unauthorized_client", "AADSTS700016")


def test_token_endpoint_rejects_an_unknown_tenant(server: RunningServer) -> None:
    response = token_request(server, tenant=str(uuid.uuid4()))
    assert response.status_code == 400, response.text
    assert "AADSTS90002" in response.json()["error_description"]


def test_token_endpoint_requires_a_scope(server: RunningServer) -> None:
    response = token_request(server, scope="")
    assert_oauth_error(response, 400, "invalid_request", "AADSTS900144")


@pytest.mark.parametrize(
    "grant", ["password", "authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
)
def test_token_endpoint_rejects_an_unsupported_grant(server: RunningServer, grant: str) -> None:
    response = token_request(server, grant_type=grant)
    assert_oauth_error(response, 400, "unsupported_grant_type", "AADSTS70003")


def test_client_secret_credential_surfaces_a_wrong_secret(server: RunningServer) -> None:
    credential = credential_for(server, server.client_id, "not-the-secret")
    with credential, pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token("https://management.azure.com/.default")
    assert "AADSTS7000215" in str(raised.value)


# -- secrets never leak --------------------------------------------------------------------------------


class SecretFlows:
    """Drives requests that carry secrets against one server and remembers every secret and token."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.endpoint, verify=trusting(server), timeout=30)
        self.secrets: list[str] = [server.client_secret]
        self.tokens: list[str] = []

    def token(self, client_id: str, secret: str, expect: int = 200, *, v1: bool = False) -> str:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        if v1:
            path, form["resource"] = f"/{self.server.tenant_id}/oauth2/token", MANAGEMENT
        else:
            path, form["scope"] = f"/{self.server.tenant_id}/oauth2/v2.0/token", MANAGEMENT + ".default"
        response = self.http.post(path, data=form)
        assert response.status_code == expect, response.text
        issued = str(response.json().get("access_token", ""))
        if issued:
            self.tokens.append(issued)
        return issued

    def directory(self, admin: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            f"/moorage/directory/{self.server.tenant_id}/servicePrincipals{path}",
            json=body,
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert response.status_code in (200, 201), response.text
        issued = dict(response.json())
        self.secrets.append(issued["password"])
        return issued

    def arm(self, method: str, path: str, authorization: str, **kw: Any) -> int:
        response = self.http.request(
            method,
            f"/subscriptions/{self.server.subscription_id}{path}",
            params={"api-version": RG_API},
            headers={"Authorization": authorization},
            **kw,
        )
        return response.status_code


def test_secrets_and_tokens_never_reach_the_log(fresh_server: RunningServer) -> None:
    flows = SecretFlows(fresh_server)
    with flows.http:
        admin = flows.token(fresh_server.client_id, fresh_server.client_secret)
        flows.token(fresh_server.client_id, fresh_server.client_secret, v1=True)
        wrong = f"wrong-{uuid.uuid4().hex}"
        flows.secrets.append(wrong)
        flows.token(fresh_server.client_id, wrong, 401)

        created = flows.directory(admin, "", {"displayName": "leak-check"})
        app_id, first = created["appId"], created["password"]
        sp_token = flows.token(app_id, first)
        second = flows.directory(admin, f"/{app_id}/resetCredentials", {})["password"]
        flows.token(app_id, first, 401)
        flows.token(app_id, second, v1=True)

        group = f"/resourcegroups/rg-{uuid.uuid4().hex[:8]}"
        basic = base64.b64encode(f"{app_id}:{second}".encode()).decode()
        forged = f"{admin.rsplit('.', 1)[0]}.{b64url(b'forged')}"
        assert flows.arm("PUT", group, f"Bearer {admin}", json={"location": "westus"}) == 201
        assert flows.arm("GET", "/resourcegroups", f"Bearer {admin}") == 200
        assert flows.arm("GET", group, f"Bearer {sp_token}") == 403
        assert flows.arm("GET", group, f"Bearer {forged}") == 401
        assert flows.arm("GET", group, f"Basic {basic}") == 401
        assert flows.arm("PUT", group, f"Bearer {admin}", content=b"{") == 400

    log = fresh_server.log_text()
    # The scan is over a log that recorded these requests.
    assert "/oauth2/v2.0/token" in log
    assert "/resetCredentials" in log
    for secret in flows.secrets:
        assert secret not in log
    for issued in flows.tokens:
        assert issued not in log
        assert issued.rsplit(".", 1)[1] not in log


def test_service_principal_read_never_returns_the_password(server: RunningServer, raw: RawArm) -> None:
    bearer = {"Authorization": f"Bearer {raw.token}"}
    base = f"/moorage/directory/{server.tenant_id}/servicePrincipals"
    created = raw.http.post(base, json={"displayName": f"sp-{uuid.uuid4().hex[:8]}"}, headers=bearer)
    assert created.status_code == 201, created.text
    app_id, password = created.json()["appId"], created.json()["password"]
    try:
        read = raw.http.get(f"{base}/{app_id}", headers=bearer)
        assert read.status_code == 200, read.text
        assert password not in read.text
        assert "password" not in read.json()
        assert read.json()["passwordCredentials"][0]["hint"] == password[:3]
        listing = raw.http.get(base, headers=bearer)
        assert listing.status_code == 200
        assert password not in listing.text
    finally:
        raw.http.delete(f"{base}/{app_id}", headers=bearer)


@pytest.mark.parametrize("pattern", ["bootstrap.json", "connection.json", "keys/*.pem", "tls/*-key.pem"])
def test_private_files_have_mode_0600(server: RunningServer, pattern: str) -> None:
    paths = sorted(server.home.glob(pattern))
    assert paths, f"nothing matches {pattern}"
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# -- bad input is a 400, never a 500 ---------------------------------------------------------------------


class BadInputTargets:
    """Where malformed PUTs go: a new group, and an identity and a role assignment in a group."""

    def __init__(self, server: RunningServer, group: str, principal_id: str) -> None:
        self.subscription = f"/subscriptions/{server.subscription_id}"
        self.group = f"{self.subscription}/resourceGroups/{group}"
        self.principal_id = principal_id

    def path(self, kind: str) -> tuple[str, str]:
        """A fresh resource path of ``kind`` and its api-version."""
        suffix = uuid.uuid4().hex[:8]
        if kind == "group":
            return f"{self.subscription}/resourcegroups/rg-{suffix}", RG_API
        if kind == "identity":
            return (
                f"{self.group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{suffix}",
                MSI_API,
            )
        return f"{self.group}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", AUTHZ_API


@pytest.fixture(scope="module")
def targets(server: RunningServer, raw: RawArm, forge: TokenForge) -> Iterator[BadInputTargets]:
    name = f"rg-bad-{uuid.uuid4().hex[:8]}"
    path = f"/subscriptions/{server.subscription_id}/resourcegroups/{name}"
    assert raw.request("PUT", path, json={"location": "westus"}).status_code == 201
    yield BadInputTargets(server, name, forge.real_claims["oid"])
    raw.request("DELETE", path)


MALFORMED = [
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'"text"', id="string"),
    pytest.param(b"null", id="null"),
    pytest.param(b"\xff\xfe\x00{", id="not-utf8"),
    pytest.param(b"[" * 100_000, id="deeply-nested"),
    pytest.param(b'{"location": ' + b"9" * 5000 + b"}", id="huge-number"),
]


def assert_arm_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert {"code", "message", "target", "details", "additionalInfo"} <= error.keys()
    assert error["message"]


def put_raw(raw: RawArm, path: str, api: str, content: bytes) -> httpx.Response:
    return raw.request(
        "PUT", path, api_version=api, content=content, headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize("kind", ["group", "identity", "assignment"])
@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_body_is_invalid_request_content(
    raw: RawArm, targets: BadInputTargets, kind: str, body: bytes
) -> None:
    path, api = targets.path(kind)
    assert_arm_error(put_raw(raw, path, api, body), 400, "InvalidRequestContent")


PRINCIPAL = "{principal}"
INVALID = "InvalidRequestContent"


def props(**values: Any) -> dict[str, Any]:
    """A role assignment body: Reader for the bootstrap principal, with ``values`` on top."""
    return {"properties": {"roleDefinitionId": READER, "principalId": PRINCIPAL, **values}}


WRONG_TYPES = [
    pytest.param("group", {"location": 5}, "LocationRequired", id="group-location-number"),
    pytest.param("group", {"location": ""}, "LocationRequired", id="group-location-empty"),
    pytest.param("group", {"location": "westus", "tags": "x"}, INVALID, id="group-tags-string"),
    pytest.param("group", {"location": "westus", "tags": {"a": 1}}, INVALID, id="group-tag-number"),
    pytest.param("group", {"location": "westus", "properties": []}, INVALID, id="group-props-array"),
    pytest.param("identity", {"location": ["westus"]}, "LocationRequired", id="identity-location-array"),
    pytest.param("identity", {"location": "westus", "properties": "x"}, INVALID, id="identity-props"),
    pytest.param(
        "identity",
        {"location": "westus", "properties": {"isolationScope": 5}},
        INVALID,
        id="identity-isolation",
    ),
    pytest.param("identity", {"location": "westus", "tags": [1]}, INVALID, id="identity-tags"),
    pytest.param("assignment", {"properties": []}, INVALID, id="assignment-props-array"),
    pytest.param("assignment", {}, INVALID, id="assignment-empty"),
    pytest.param("assignment", props(roleDefinitionId=5), INVALID, id="assignment-role-number"),
    pytest.param("assignment", props(principalId={"id": 1}), INVALID, id="assignment-principal-object"),
    pytest.param("assignment", props(principalId="not-a-guid"), INVALID, id="assignment-principal-not-guid"),
    pytest.param("assignment", props(principalType=5), INVALID, id="assignment-principal-type-number"),
    pytest.param(
        "assignment",
        props(principalType="Robot"),
        "InvalidPrincipalType",
        id="assignment-principal-type-unknown",
    ),
    pytest.param("assignment", props(description=["x"]), INVALID, id="assignment-description-array"),
    pytest.param(
        "assignment",
        props(roleDefinitionId=str(uuid.UUID(int=7))),
        "RoleDefinitionDoesNotExist",
        id="assignment-unknown-role",
    ),
]


@pytest.mark.parametrize(("kind", "body", "code"), WRONG_TYPES)
def test_wrongly_typed_body_is_a_validation_error(
    raw: RawArm, targets: BadInputTargets, kind: str, body: Any, code: str
) -> None:
    content = json.dumps(body).replace(PRINCIPAL, targets.principal_id).encode()
    path, api = targets.path(kind)
    assert_arm_error(put_raw(raw, path, api, content), 400, code)


def test_role_assignment_name_must_be_a_guid(raw: RawArm, targets: BadInputTargets) -> None:
    path = f"{targets.group}/providers/Microsoft.Authorization/roleAssignments/not-a-guid"
    body = {"properties": {"roleDefinitionId": READER, "principalId": targets.principal_id}}
    response = raw.request("PUT", path, api_version=AUTHZ_API, json=body)
    assert_arm_error(response, 400, "InvalidRoleAssignmentId")


def test_missing_api_version_is_rejected(raw: RawArm, groups_path: str) -> None:
    response = raw.request("GET", groups_path, api_version=None)
    assert_arm_error(response, 400, "MissingApiVersionParameter")


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_directory_body_is_a_bad_request(server: RunningServer, raw: RawArm, body: bytes) -> None:
    response = raw.http.post(
        f"/moorage/directory/{server.tenant_id}/servicePrincipals",
        content=body,
        headers={"Authorization": f"Bearer {raw.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "Request_BadRequest"
