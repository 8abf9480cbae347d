"""Token issue and verification, without a server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from moorage.identity.keys import KeyRing, SigningKey
from moorage.identity.records import Principal, PrincipalKind
from moorage.identity.tokens import ExpiredToken, InvalidToken, TokenAuthority, WrongAudience
from moorage.registry.auth import (
    ACCESS_LIFETIME_S,
    LEEWAY_S,
    CredentialKind,
    RegistryTokens,
    Subject,
    Unauthorized,
)
from moorage.registry.records import Registry, RegistrySettings


class FixedClock:
    def __init__(self, ts: float) -> None:
        self.ts = ts

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ts, UTC)

    def timestamp(self) -> float:
        return self.ts


def principal(resource_id: str | None = None) -> Principal:
    kind = PrincipalKind.MANAGED_IDENTITY if resource_id else PrincipalKind.APPLICATION
    return Principal("oid-1", "app-1", "tenant-1", kind, "p", datetime.now(UTC), resource_id)


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    return KeyRing.load(tmp_path / "keys")


def test_managed_identity_tokens_carry_xms_mirid(keys: KeyRing) -> None:
    authority = TokenAuthority(keys, FixedClock(1_700_000_000), 3600, "https://h:1")
    rid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    issued = authority.issue(principal(rid), "https://containerregistry.azure.net")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["xms_mirid"] == rid
    assert claims["iss"] == "https://h:1/tenant-1/v2.0"
    assert claims["exp"] - claims["iat"] == 3600


def test_verify_round_trip_and_audience(keys: KeyRing) -> None:
    clock = FixedClock(time.time())
    authority = TokenAuthority(keys, clock, 3600, "https://h:1")
    token = authority.issue(principal(), "https://management.azure.com/").token
    assert authority.verify(token, ["https://management.azure.com/"]).object_id == "oid-1"
    with pytest.raises(WrongAudience):
        authority.verify(token, ["https://graph.microsoft.com"])


def test_expired_token_is_refused(keys: KeyRing) -> None:
    past = TokenAuthority(keys, FixedClock(1_000_000_000), 60, "https://h:1")
    token = past.issue(principal(), "aud").token
    now = TokenAuthority(keys, FixedClock(time.time()), 60, "https://h:1")
    with pytest.raises(ExpiredToken) as info:
        now.verify(token)
    assert "is earlier than current UTC time" in info.value.message


def test_token_from_another_issuer_base_is_refused(keys: KeyRing) -> None:
    token = TokenAuthority(keys, FixedClock(time.time()), 60, "https://other:2").issue(principal(), "a").token
    with pytest.raises(InvalidToken):
        TokenAuthority(keys, FixedClock(time.time()), 60, "https://h:1").verify(token)


def test_keys_survive_reload(tmp_path: Path) -> None:
    first = KeyRing.load(tmp_path / "k")
    second = KeyRing.load(tmp_path / "k")
    assert first.current.kid == second.current.kid
    assert oct((tmp_path / "k" / "signing-0001.pem").stat().st_mode & 0o777) == "0o600"


# -- the registry's own tokens: verification is remembered --------------------------------------


def _registry(name: str = "reg1", port: int = 5000) -> Registry:
    return Registry(
        name=name,
        display_name=name,
        resource_id=f"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/{name}",
        tenant_id="tenant-1",
        login_server=f"127.0.0.1:{port}",
        port=port,
        settings=RegistrySettings(),
        created_at=datetime.now(UTC),
    )


class _Keys:
    """A key ring that can forget keys (a rotated-out key must stop verifying)."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.forgotten: set[str] = set()

    @property
    def current(self) -> SigningKey:
        return self.ring.current

    def by_kid(self, kid: str) -> SigningKey | None:
        return None if kid in self.forgotten else self.ring.by_kid(kid)


def test_registry_token_verification_is_remembered_per_registry_and_grant(
    keys: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = RegistryTokens(keys, FixedClock(time.time()))
    registry = _registry()
    token = tokens.access_token(registry, Subject(CredentialKind.ADMIN, "reg1"), [])
    subject, claims = tokens.verify(token, registry, "access_token")
    assert subject.kind is CredentialKind.ADMIN
    decoded: list[str] = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append("x") or pytest.fail("re-verified"))
    assert tokens.verify(token, registry, "access_token") == (subject, claims)
    assert not decoded
    # A cached success for one registry or grant says nothing about another.
    monkeypatch.undo()
    with pytest.raises(Unauthorized):
        tokens.verify(token, _registry("reg2", 5001), "access_token")
    with pytest.raises(Unauthorized):
        tokens.verify(token, registry, "refresh_token")


def test_remembered_registry_token_still_expires_and_needs_its_key(
    keys: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = _Keys(keys)
    tokens = RegistryTokens(ring, FixedClock(time.time()))
    registry = _registry()
    token = tokens.access_token(registry, Subject(CredentialKind.ADMIN, "reg1"), [])
    tokens.verify(token, registry, "access_token")
    ring.forgotten.add(keys.current.kid)
    with pytest.raises(Unauthorized):
        tokens.verify(token, registry, "access_token")
    ring.forgotten.clear()
    tokens.verify(token, registry, "access_token")
    # Past exp + leeway the remembered result is dropped and the token verified afresh (PyJWT
    # then refuses it; its own clock is not moved here, so count the decodes instead).
    decode = jwt.decode
    decoded: list[str] = []

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    tokens.verify(token, registry, "access_token")
    assert not decoded
    later = time.time() + ACCESS_LIFETIME_S + LEEWAY_S + 1
    monkeypatch.setattr(time, "time", lambda: later)
    tokens.verify(token, registry, "access_token")
    assert decoded == [token]
