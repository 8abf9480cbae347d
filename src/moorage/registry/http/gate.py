"""Who is calling which registry from where, and may they: the firewall, credential checks and
scope checks every registry request passes through, in that order."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from moorage.core.errors import NotFound, Unauthenticated
from moorage.core.log import get_logger
from moorage.registry.auth import (
    ANONYMOUS,
    NULL_GUID,
    AccessDenied,
    Authorizer,
    CredentialKind,
    RegistryTokens,
    Scope,
    Subject,
    Unauthorized,
    granted_actions,
)
from moorage.registry.interfaces import ClientSecrets, EntraPrincipal, EntraTokens
from moorage.registry.network import Origin, client_address, decide, denied
from moorage.registry.records import Registry
from moorage.registry.service import Registries

log = get_logger("registry.gate")

# Extension key the platform transport sets on the ASGI scope. Network servers never set
# ASGI extensions of this name, so a socket-borne request cannot claim to be the platform.
PLATFORM_EXTENSION = "moorage.platform"
ENTRA_AUDIENCES = (
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://containerregistry.azure.net",
    "https://containerregistry.azure.net/",
)


class ChallengeRequired(Unauthorized):
    """401 for an anonymous request, naming what it asked for as ACR does (``detail``:
    ``[{"Type": "repository", "Name": "<repo>", "Action": "pull"}]``)."""

    def __init__(self, scope: Scope) -> None:
        super().__init__("authentication required")
        self.detail = [{"Type": scope.type, "Name": scope.name, "Action": a} for a in scope.actions]


@dataclass(frozen=True)
class Caller:
    registry: Registry
    peer: str
    origin: Origin
    subject: Subject
    access: dict[str, Any] | None = None  # claims of the ACR access token used, if any


def _subject_from_entra(principal: EntraPrincipal) -> Subject:
    kind = (
        CredentialKind.MANAGED_IDENTITY if principal.managed_identity_id else CredentialKind.SERVICE_PRINCIPAL
    )
    return Subject(
        kind=kind,
        id=principal.object_id,
        tenant_id=principal.tenant_id,
        app_id=principal.app_id,
        managed_identity_id=principal.managed_identity_id,
    )


class Gate:
    def __init__(
        self,
        registries: Registries,
        authorizer: Authorizer,
        tokens: RegistryTokens,
        entra: EntraTokens,
        clients: ClientSecrets,
        *,
        audit: bool = False,
        trusted_proxies: tuple[str, ...] = (),
        platform_address: str = "127.0.0.1",
    ) -> None:
        self.registries = registries
        self.authorizer = authorizer
        self.tokens = tokens
        self._entra = entra
        self._clients = clients
        self._audit = audit
        self._trusted_proxies = trusted_proxies
        self._platform_address = platform_address

    # -- where from -----------------------------------------------------------------------------

    @staticmethod
    def origin(request: Request) -> Origin:
        extensions = request.scope.get("extensions") or {}
        return Origin.PLATFORM if extensions.get(PLATFORM_EXTENSION) is True else Origin.NETWORK

    def peer(self, request: Request) -> str:
        if self.origin(request) is Origin.PLATFORM:
            return self._platform_address
        client = request.client.host if request.client else ""
        return client_address(client, request.headers.get("x-forwarded-for"), self._trusted_proxies)

    async def registry_for(self, request: Request) -> Registry:
        """The registry a request addresses: by the listener's port, or on the platform channel
        by the ``Host`` header (which may use Azure's ``<name>.azurecr.io`` form)."""
        registry: Registry | None
        if self.origin(request) is Origin.PLATFORM:
            registry = await self.registries.by_login_server(request.headers.get("host", ""))
        else:
            server = request.scope.get("server") or ("", 0)
            registry = await self.registries.by_port(int(server[1] or 0))
        if registry is None:
            raise NotFound("no registry is served at this address", code="NAME_UNKNOWN")
        return registry

    def firewall(self, request: Request, registry: Registry, *, managed_identity: bool | None) -> None:
        peer = self.peer(request)
        decision = decide(registry, peer, self.origin(request), managed_identity=managed_identity)
        if decision.allowed:
            return
        if self._audit:
            log.warning(
                "firewall audit: would deny",
                registry=registry.name,
                peer=peer,
                reason=decision.reason,
                path=request.url.path,
            )
            return
        log.info("firewall denied", registry=registry.name, peer=peer, reason=decision.reason)
        raise denied(peer, decision)

    # -- who ------------------------------------------------------------------------------------

    def challenge(
        self, request: Request, registry: Registry, scope: Scope | None, error: str | None = None
    ) -> str:
        value = (
            f'Bearer realm="https://{registry.login_server}/oauth2/token",service="{registry.login_server}"'
        )
        if scope is not None:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        request.state.challenge = value
        return value

    async def authenticate_basic(self, registry: Registry, username: str, password: str) -> Subject:
        """Admin user, null-GUID + refresh token, repository-scoped token, or service principal."""
        if username == NULL_GUID:
            for grant in ("refresh_token", "access_token"):
                try:
                    subject, _ = self.tokens.verify(password, registry, grant)
                except Unauthorized:
                    continue
                return subject
            raise Unauthorized("authentication required")
        if await self.registries.check_admin(registry, username, password):
            return Subject(CredentialKind.ADMIN, registry.name)
        token = await self.registries.check_token(registry, username, password)
        if token is not None:
            return Subject(CredentialKind.REPOSITORY_TOKEN, token.name, scope_map=token.scope_map)
        try:
            uuid.UUID(username)
        except ValueError:
            raise Unauthorized("authentication required") from None
        principal = await self._clients.authenticate(registry.tenant_id, username, password)
        if principal is None:
            raise Unauthorized("authentication required")
        return _subject_from_entra(principal)

    def subject_from_entra_token(self, token: str) -> Subject:
        try:
            return _subject_from_entra(self._entra.verify(token, ENTRA_AUDIENCES))
        except Unauthenticated as exc:
            raise Unauthorized(f"authentication required: {exc.message}") from exc

    async def caller(self, request: Request, registry: Registry) -> Caller:
        """Authenticate the request's ``Authorization`` header (none: anonymous)."""
        peer, origin = self.peer(request), self.origin(request)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if not header:
            return Caller(registry, peer, origin, ANONYMOUS)
        if scheme == "basic":
            username, password = _basic(value)
            return Caller(registry, peer, origin, await self.authenticate_basic(registry, username, password))
        if scheme == "bearer" and value:
            subject, claims = self.tokens.verify(value, registry, "access_token")
            return Caller(registry, peer, origin, subject, claims)
        raise Unauthorized("authentication required")

    # -- may they -------------------------------------------------------------------------------

    async def admit(self, request: Request, scope: Scope | None) -> Caller:
        """Resolve the registry, apply the firewall, authenticate, and check ``scope``.

        Without a scope only authentication is required (``GET /v2/``)."""
        registry = await self.registry_for(request)
        self.firewall(request, registry, managed_identity=None)
        self.challenge(request, registry, scope)
        caller = await self.caller(request, registry)
        if caller.subject.kind is not CredentialKind.ANONYMOUS:
            self.firewall(request, registry, managed_identity=caller.subject.is_managed_identity)
        if scope is None:
            if caller.subject.kind is CredentialKind.ANONYMOUS and not self.authorizer.is_open(registry):
                raise Unauthorized("authentication required")
            return caller
        await self.require(request, caller, scope)
        return caller

    async def require(self, request: Request, caller: Caller, scope: Scope) -> None:
        needed = set(scope.actions)
        if caller.access is not None:
            held = granted_actions(caller.access, scope.type, scope.name)
            if needed <= held:
                return
            requested = any(
                isinstance(e, dict) and e.get("type") == scope.type and e.get("name") == scope.name
                for e in caller.access.get("access") or []
            )
            self.challenge(request, caller.registry, scope, "insufficient_scope")
            if requested:
                # RFC 6750 3.1: 403 with the challenge, so token clients (oras-py) can fetch a
                # token for the wider scope and retry.
                raise AccessDenied("requested access to the resource is denied")
            raise Unauthorized("authentication required")
        scope_map = None
        if caller.subject.kind is CredentialKind.REPOSITORY_TOKEN and caller.subject.scope_map:
            scope_map = await self.registries.scope_map(caller.registry.name, caller.subject.scope_map)
        granted = await self.authorizer.grant(caller.registry, caller.subject, [scope], scope_map)
        held = set(granted[0].actions) if granted else set()
        if "*" in held or needed <= held:
            return
        if caller.subject.kind is CredentialKind.ANONYMOUS:
            raise ChallengeRequired(scope)
        raise AccessDenied("requested access to the resource is denied")

    async def grant(self, caller_registry: Registry, subject: Subject, scopes: list[Scope]) -> list[Scope]:
        scope_map = None
        if subject.kind is CredentialKind.REPOSITORY_TOKEN and subject.scope_map:
            scope_map = await self.registries.scope_map(caller_registry.name, subject.scope_map)
        return await self.authorizer.grant(caller_registry, subject, scopes, scope_map)


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("authentication required: malformed basic credentials") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("authentication required: malformed basic credentials")
    return username, password
