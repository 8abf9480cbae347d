"""Token issue and verification, without a server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from moorage.identity.keys import KeyRing
from moorage.identity.records import Principal, PrincipalKind
from moorage.identity.tokens import ExpiredToken, InvalidToken, TokenAuthority, WrongAudience


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
