"""Access tokens: RS256 JWTs signed with the key ring, and their verification.

Claims follow Entra's app-only access tokens: ``iss``, ``aud`` (the resource asked for, exactly),
``tid``, ``oid``, ``sub``, ``appid``, ``azp``, ``idtyp=app``, ``iat``/``nbf``/``exp``, ``ver``,
and for managed identities ``xms_mirid`` (the identity's ARM resource id).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from moorage.core.clock import Clock
from moorage.core.errors import Unauthenticated
from moorage.identity.keys import KeyRing
from moorage.identity.records import Principal, PrincipalKind, TokenClaims

_LEEWAY_S = 60


class InvalidToken(Unauthenticated):
    """The token is malformed, forged, or not ours."""

    default_code = "InvalidAuthenticationToken"


class ExpiredToken(Unauthenticated):
    default_code = "ExpiredAuthenticationToken"


class WrongAudience(Unauthenticated):
    default_code = "InvalidAuthenticationTokenAudience"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    expires_on: int
    not_before: int
    resource: str


class TokenAuthority:
    """Issues and verifies moorage's JWTs.

    ``issuer_base`` is the canonical authority URL (``https://host:port``); it is fixed once the
    server knows its address, so tokens verify whichever host name a client used to reach us.
    """

    def __init__(self, keys: KeyRing, clock: Clock, lifetime_s: int, issuer_base: str) -> None:
        self._keys = keys
        self._clock = clock
        self._lifetime_s = lifetime_s
        self.issuer_base = issuer_base.rstrip("/")

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def issuer(self, tenant_id: str) -> str:
        return f"{self.issuer_base}/{tenant_id}/v2.0"

    def issue(
        self,
        principal: Principal,
        audience: str,
        *,
        lifetime_s: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign an app-only access token for ``principal`` and ``audience``."""
        now = int(self._clock.timestamp())
        lifetime = lifetime_s or self._lifetime_s
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(principal.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "aio": uuid.uuid4().hex,
            "appid": principal.app_id,
            "azp": principal.app_id,
            "appidacr": "2" if principal.kind is PrincipalKind.MANAGED_IDENTITY else "1",
            "idp": self.issuer(principal.tenant_id),
            "idtyp": "app",
            "oid": principal.object_id,
            "sub": principal.object_id,
            "tid": principal.tenant_id,
            "uti": uuid.uuid4().hex[:22],
            "ver": "2.0",
        }
        if principal.resource_id:
            claims["xms_mirid"] = principal.resource_id
        if extra:
            claims.update(extra)
        key = self._keys.current
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
        return IssuedToken(token, lifetime, now + lifetime, now, audience)

    def verify(self, token: str, audiences: Collection[str] | None = None) -> TokenClaims:
        """Check signature, algorithm, issuer, time window and (when given) audience.

        Raises :class:`InvalidToken`, :class:`ExpiredToken` or :class:`WrongAudience`; messages
        never echo the token.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The access token is invalid.") from exc
        if header.get("alg") != "RS256":
            raise InvalidToken("The access token is invalid: its signing algorithm is not allowed.")
        key = self._keys.by_kid(str(header.get("kid", "")))
        if key is None:
            raise InvalidToken("The access token is invalid: it was not signed by this authority.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "nbf", "iat", "iss", "tid", "oid"]},
                leeway=_LEEWAY_S,
            )
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredToken(self._expired_message(token)) from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("The access token is not yet valid.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("The access token is invalid.") from exc
        tenant_id = str(claims["tid"])
        if claims["iss"] != self.issuer(tenant_id):
            raise InvalidToken("The access token is invalid: it has an unexpected issuer.")
        audience = str(claims.get("aud", ""))
        if audiences is not None and audience not in audiences:
            allowed = ",".join(f"'{a}'" for a in audiences)
            raise WrongAudience(
                f"The access token has been obtained for wrong audience or resource '{audience}'. "
                f"It should exactly match with one of the allowed audiences {allowed}."
            )
        kind = PrincipalKind.MANAGED_IDENTITY if claims.get("xms_mirid") else PrincipalKind.APPLICATION
        return TokenClaims(
            tenant_id=tenant_id,
            object_id=str(claims["oid"]),
            app_id=str(claims.get("appid", "")),
            audience=audience,
            issuer=str(claims["iss"]),
            expires_at=int(claims["exp"]),
            kind=kind,
            resource_id=str(claims["xms_mirid"]) if claims.get("xms_mirid") else None,
            raw=claims,
        )

    def _expired_message(self, token: str) -> str:
        try:
            exp = int(jwt.decode(token, options={"verify_signature": False})["exp"])
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            return "The access token has expired."

        def fmt(ts: float) -> str:
            return datetime.fromtimestamp(ts, UTC).strftime("%m/%d/%Y %H:%M:%S")

        return (
            f"The access token expiry UTC time '{fmt(exp)}' is earlier than current UTC time "
            f"'{fmt(self._clock.timestamp())}'."
        )
