"""ACR's token service: ``/oauth2/exchange`` (Entra token → ACR refresh token) and
``/oauth2/token`` (Basic credentials, refresh token, or anonymous → access token)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from moorage.core.errors import InvalidArgument
from moorage.edge import form_body, json_response
from moorage.registry.auth import (
    ACCESS_LIFETIME_S,
    ANONYMOUS,
    CredentialKind,
    Subject,
    Unauthorized,
    parse_scopes,
)
from moorage.registry.http.gate import Gate, _basic
from moorage.registry.records import Registry


class UnsupportedGrant(InvalidArgument):
    default_code = "UNSUPPORTED"


async def _scopes_from(request: Request) -> list[str]:
    """Every ``scope`` of the query and of a form body (repeatable in both)."""
    values = list(request.query_params.getlist("scope"))
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", "replace")
        values += [v for k, v in parse_qsl(body, keep_blank_values=True) if k == "scope"]
    return values


class TokenService:
    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def _registry(self, request: Request) -> Registry:
        registry = await self._gate.registry_for(request)
        self._gate.firewall(request, registry, managed_identity=None)
        self._gate.challenge(request, registry, None)
        return registry

    def _post_auth_firewall(self, request: Request, registry: Registry, subject: Subject) -> None:
        if subject.kind is not CredentialKind.ANONYMOUS:
            self._gate.firewall(request, registry, managed_identity=subject.is_managed_identity)

    async def exchange(self, request: Request) -> Response:
        """``POST /oauth2/exchange``: an Entra access token for an ACR refresh token."""
        registry = await self._registry(request)
        form = await form_body(request)
        grant = form.get("grant_type", "")
        if grant not in ("access_token", "access_token_refresh_token"):
            raise UnsupportedGrant(f"grant_type '{grant}' is not supported; use 'access_token'")
        token = form.get("access_token", "")
        if not token:
            raise InvalidArgument("access_token is required", code="UNSUPPORTED")
        subject = self._gate.subject_from_entra_token(token)
        if subject.tenant_id and subject.tenant_id != registry.tenant_id:
            raise Unauthorized("authentication required: the token is from another tenant")
        self._post_auth_firewall(request, registry, subject)
        return json_response({"refresh_token": self._gate.tokens.refresh_token(registry, subject)})

    async def token(self, request: Request) -> Response:
        """``GET|POST /oauth2/token``."""
        registry = await self._registry(request)
        form = await form_body(request) if request.method == "POST" else {}
        scopes = parse_scopes(await _scopes_from(request))
        subject, refresh = await self._authenticate(request, registry, form)
        self._post_auth_firewall(request, registry, subject)
        granted = await self._gate.grant(registry, subject, scopes)
        access = self._gate.tokens.access_token(registry, subject, granted)
        body: dict[str, Any] = {"access_token": access, "token": access, "expires_in": ACCESS_LIFETIME_S}
        if refresh:
            body["refresh_token"] = self._gate.tokens.refresh_token(registry, subject)
        return json_response(body)

    async def _authenticate(
        self, request: Request, registry: Registry, form: dict[str, str]
    ) -> tuple[Subject, bool]:
        """The subject, and whether to also hand out a refresh token (docker login's
        ``access_type=offline`` password grant)."""
        grant = form.get("grant_type", "")
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            subject, _ = self._gate.tokens.verify(token, registry, "refresh_token")
            return subject, False
        if grant == "password":
            username, password = form.get("username", ""), form.get("password", "")
            if not username and not password:
                return self._anonymous(registry), False
            subject = await self._gate.authenticate_basic(registry, username, password)
            return subject, form.get("access_type") == "offline"
        if grant:
            raise UnsupportedGrant(f"grant_type '{grant}' is not supported")
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            username, password = _basic(value.strip())
            return await self._gate.authenticate_basic(registry, username, password), False
        if header:
            raise Unauthorized("authentication required")
        return self._anonymous(registry), False

    def _anonymous(self, registry: Registry) -> Subject:
        if not (registry.settings.anonymous_pull_enabled or self._gate.authorizer.is_open(registry)):
            raise Unauthorized("authentication required")
        return ANONYMOUS
