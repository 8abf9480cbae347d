"""ACR's authorization model: scopes, who may do what, and the registry's own tokens.

Credentials resolve to a :class:`Subject`; requested scopes (``repository:<name>:pull,push``,
``registry:catalog:*``) are granted per subject kind:

* admin user — everything;
* service principal / managed identity — Azure RBAC on the registry resource
  (``…/pull/read``, ``…/push/write``, ``…/artifacts/delete``), inherited from the subscription and
  resource group like any role assignment;
* repository-scoped token — the actions of its scope map;
* anonymous — pull, when the registry allows anonymous pull.

Refresh and access tokens are RS256 JWTs issued by "Azure Container Registry" for the login
server. Their payload is pure ASCII without ``>``, ``?`` or ``~`` and a multiple of three bytes
long, so its base64url text contains no ``-``, ``_`` or padding: azure-containerregistry decodes
it with plain ``base64.b64decode``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from moorage.core.clock import Clock
from moorage.core.errors import PermissionDenied, Unauthenticated
from moorage.registry.interfaces import AccessChecks, SigningKeys
from moorage.registry.records import Registry, ScopeMap

ISSUER = "Azure Container Registry"
NULL_GUID = "00000000-0000-0000-0000-000000000000"
REFRESH_LIFETIME_S = 3 * 3600
ACCESS_LIFETIME_S = 75 * 60
LEEWAY_S = 60  # clock skew tolerated on exp/nbf/iat
VERIFIED_CACHE_SIZE = 4096  # verified tokens remembered (least recently used dropped first)

PULL_ACTION = "Microsoft.ContainerRegistry/registries/pull/read"
PUSH_ACTION = "Microsoft.ContainerRegistry/registries/push/write"
DELETE_ACTION = "Microsoft.ContainerRegistry/registries/artifacts/delete"

REPOSITORY_ACTIONS = ("pull", "push", "delete", "metadata_read", "metadata_write")
_RBAC = {
    "pull": PULL_ACTION,
    "metadata_read": PULL_ACTION,
    "push": PUSH_ACTION,
    "metadata_write": PUSH_ACTION,
    "delete": DELETE_ACTION,
}
_SCOPE_MAP_VERBS = {
    ("content", "read"): "pull",
    ("content", "write"): "push",
    ("content", "delete"): "delete",
    ("metadata", "read"): "metadata_read",
    ("metadata", "write"): "metadata_write",
}
_SCOPE = re.compile(r"^(repository|registry)(\([a-z0-9]+\))?:([^:]+):([a-z_*,]*)$")


class Unauthorized(Unauthenticated):
    """No usable credential (HTTP 401 with a Bearer challenge, OCI code ``UNAUTHORIZED``)."""

    default_code = "UNAUTHORIZED"


class AccessDenied(PermissionDenied):
    """Authenticated but not allowed (``DENIED``: "requested access to the resource is denied")."""

    default_code = "DENIED"


class CredentialKind(StrEnum):
    ANONYMOUS = "anonymous"
    ADMIN = "admin"
    SERVICE_PRINCIPAL = "servicePrincipal"
    MANAGED_IDENTITY = "managedIdentity"
    REPOSITORY_TOKEN = "repositoryToken"


@dataclass(frozen=True)
class Subject:
    """Who is asking. ``id``: object id (Entra), token name, or the admin user name."""

    kind: CredentialKind
    id: str
    tenant_id: str | None = None
    app_id: str | None = None
    managed_identity_id: str | None = None
    scope_map: str | None = None

    @property
    def is_managed_identity(self) -> bool:
        return self.kind is CredentialKind.MANAGED_IDENTITY


ANONYMOUS = Subject(CredentialKind.ANONYMOUS, "")


@dataclass(frozen=True)
class Scope:
    type: str  # repository | registry
    name: str
    actions: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def as_claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse ``scope`` parameters (repeatable, each possibly space-separated). Unknown shapes are
    ignored, as distribution's token servers do."""
    scopes: list[Scope] = []
    for value in values:
        for item in value.split():
            match = _SCOPE.match(item)
            if match:
                actions = tuple(a for a in match.group(4).split(",") if a)
                scopes.append(Scope(match.group(1), match.group(3), actions))
    return scopes


def _expand(actions: Iterable[str]) -> list[str]:
    out: list[str] = []
    for action in actions:
        for concrete in REPOSITORY_ACTIONS if action == "*" else (action,):
            if concrete not in out:
                out.append(concrete)
    return out


def _scope_map_allows(scope_map: ScopeMap, repository: str, action: str) -> bool:
    for entry in scope_map.actions:
        parts = entry.split("/")
        if len(parts) < 4 or parts[0] != "repositories":
            continue
        pattern, kind, verb = "/".join(parts[1:-2]), parts[-2], parts[-1]
        if _SCOPE_MAP_VERBS.get((kind, verb)) != action:
            continue
        if pattern in ("*", repository) or (pattern.endswith("/*") and repository.startswith(pattern[:-1])):
            return True
    return False


class Authorizer:
    """Grants requested scopes to a subject on a registry."""

    def __init__(self, access: AccessChecks, open_registries: Iterable[str] = ()) -> None:
        self._access = access
        # Operator-chosen registries that anonymous clients may read and write (conformance runs,
        # throwaway local use); never set through ARM.
        self._open = {name.lower() for name in open_registries}

    def is_open(self, registry: Registry) -> bool:
        return registry.name in self._open

    async def grant(
        self, registry: Registry, subject: Subject, scopes: Iterable[Scope], scope_map: ScopeMap | None = None
    ) -> list[Scope]:
        """The subset of each requested scope's actions that ``subject`` holds."""
        granted: list[Scope] = []
        cache: dict[str, bool] = {}

        async def rbac(action: str) -> bool:
            if action not in cache:
                cache[action] = await self._access.is_authorized(subject.id, action, registry.resource_id)
            return cache[action]

        for scope in scopes:
            allowed: list[str] = []
            if scope.type == "registry":
                if scope.name == "catalog" and await self._catalog(registry, subject, rbac):
                    allowed = list(scope.actions) or ["*"]
            else:
                for action in _expand(scope.actions):
                    if await self._allows(
                        registry, subject, scope.name, action, scope_map=scope_map, rbac=rbac
                    ):
                        allowed.append(action)
            granted.append(Scope(scope.type, scope.name, tuple(allowed)))
        return granted

    async def _catalog(self, registry: Registry, subject: Subject, rbac: Any) -> bool:
        if subject.kind is CredentialKind.ADMIN or (
            subject.kind is CredentialKind.ANONYMOUS and self.is_open(registry)
        ):
            return True
        if subject.kind in (CredentialKind.SERVICE_PRINCIPAL, CredentialKind.MANAGED_IDENTITY):
            return bool(await rbac(PULL_ACTION))
        return False

    async def _allows(
        self,
        registry: Registry,
        subject: Subject,
        repository: str,
        action: str,
        *,
        scope_map: ScopeMap | None,
        rbac: Any,
    ) -> bool:
        if action not in REPOSITORY_ACTIONS:
            return False
        match subject.kind:
            case CredentialKind.ADMIN:
                return True
            case CredentialKind.SERVICE_PRINCIPAL | CredentialKind.MANAGED_IDENTITY:
                return bool(await rbac(_RBAC[action]))
            case CredentialKind.REPOSITORY_TOKEN:
                return scope_map is not None and _scope_map_allows(scope_map, repository, action)
            case CredentialKind.ANONYMOUS:
                if self.is_open(registry):
                    return True
                return registry.settings.anonymous_pull_enabled and action in ("pull", "metadata_read")


# -- tokens ---------------------------------------------------------------------------------------

_UNSAFE = {">": "\\u003e", "?": "\\u003f", "~": "\\u007e"}


def _ascii_payload(claims: dict[str, Any]) -> bytes:
    text = json.dumps(claims, ensure_ascii=True, separators=(",", ":"))
    for char, escape in _UNSAFE.items():
        text = text.replace(char, escape)
    # Pad inside the object so no base64 padding is needed either.
    text = text[:-1] + " " * ((3 - len(text) % 3) % 3) + "}"
    return text.encode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class _Verified:
    subject: Subject
    claims: dict[str, Any]
    kid: str
    valid_until: float  # exp + leeway, in time.time() seconds as PyJWT checks it


class RegistryTokens:
    """Issues and verifies ACR refresh and access tokens for a login server.

    A client sends the same access token with every request, so a successful verification is
    remembered by token string (with the registry and grant it was checked for) until the token
    expires, and only while its signing key is still known: a repeat costs a dict lookup instead
    of a JWT decode and RSA verification."""

    def __init__(self, keys: SigningKeys, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock
        self._verified: OrderedDict[tuple[str, str, str, str], _Verified] = OrderedDict()

    def _sign(self, claims: dict[str, Any]) -> str:
        key = self._keys.current
        header_json = json.dumps({"alg": "RS256", "typ": "JWT", "kid": key.kid}, separators=(",", ":"))
        header = _b64(header_json.encode())
        payload = _b64(_ascii_payload(claims))
        signing_input = f"{header}.{payload}".encode()
        signature = key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64(signature)}"

    def _subject_claims(self, subject: Subject) -> dict[str, Any]:
        return {
            "sub": subject.id or "anonymous",
            "tenant": subject.tenant_id or "",
            "mkind": subject.kind.value,
            "mapp": subject.app_id or "",
            "mmi": subject.managed_identity_id or "",
            "mmap": subject.scope_map or "",
        }

    def refresh_token(self, registry: Registry, subject: Subject) -> str:
        now = int(self._clock.timestamp())
        claims = {
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "exp": now + REFRESH_LIFETIME_S,
            "iat": now,
            "iss": ISSUER,
            "aud": registry.login_server,
            "version": "1.0",
            "rid": registry.name,
            "grant_type": "refresh_token",
            "permissions": {"actions": ["*"], "notActions": []},
            "roles": [],
            **self._subject_claims(subject),
        }
        return self._sign(claims)

    def access_token(self, registry: Registry, subject: Subject, granted: list[Scope]) -> str:
        now = int(self._clock.timestamp())
        claims = {
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "exp": now + ACCESS_LIFETIME_S,
            "iat": now,
            "iss": ISSUER,
            "aud": registry.login_server,
            "version": "1.0",
            "rid": registry.name,
            "access": [s.as_claim() for s in granted],
            "roles": [],
            "grant_type": "access_token",
            **self._subject_claims(subject),
        }
        return self._sign(claims)

    def verify(self, token: str, registry: Registry, grant_type: str) -> tuple[Subject, dict[str, Any]]:
        """Verify a token of ours for ``registry``; return its subject and claims (shared with
        later verifications of the same token: read them, do not change them).

        Raises :class:`Unauthorized` for anything else (wrong registry, expired, forged)."""
        key = (token, grant_type, registry.name, registry.login_server)
        known = self._verified.get(key)
        if known is not None:
            if time.time() < known.valid_until and self._keys.by_kid(known.kid) is not None:
                self._verified.move_to_end(key)
                return known.subject, known.claims
            del self._verified[key]
        subject, claims, kid = self._verify(token, registry, grant_type)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            self._verified[key] = _Verified(subject, claims, kid, float(exp) + LEEWAY_S)
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return subject, claims

    def _verify(self, token: str, registry: Registry, grant_type: str) -> tuple[Subject, dict[str, Any], str]:
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
            key = self._keys.by_kid(kid)
            if key is None:
                raise Unauthorized("authentication required: the token was not issued by this registry")
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=["RS256"],
                audience=registry.login_server,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "nbf", "aud", "iss"]},
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("authentication required: the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("authentication required: the token is invalid") from exc
        if claims.get("grant_type") != grant_type or claims.get("rid") != registry.name:
            raise Unauthorized("authentication required: the token is invalid")
        try:
            kind = CredentialKind(str(claims.get("mkind")))
        except ValueError as exc:
            raise Unauthorized("authentication required: the token is invalid") from exc
        subject = Subject(
            kind=kind,
            id=str(claims.get("sub", "")) if kind is not CredentialKind.ANONYMOUS else "",
            tenant_id=str(claims.get("tenant") or "") or None,
            app_id=str(claims.get("mapp") or "") or None,
            managed_identity_id=str(claims.get("mmi") or "") or None,
            scope_map=str(claims.get("mmap") or "") or None,
        )
        return subject, claims, kid


def granted_actions(claims: dict[str, Any], type_: str, name: str) -> set[str]:
    """Actions an access token grants on one resource."""
    actions: set[str] = set()
    for entry in claims.get("access") or []:
        if isinstance(entry, dict) and entry.get("type") == type_ and entry.get("name") == name:
            actions.update(str(a) for a in entry.get("actions") or [])
    if "*" in actions:
        actions.update(REPOSITORY_ACTIONS)
    return actions
