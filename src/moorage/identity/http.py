"""Entra-compatible HTTP edge: OpenID metadata, JWKS, the v1 and v2 token endpoints, and the
directory API that manages service principals.

Token-endpoint errors use OAuth2's envelope (``{"error", "error_description", "error_codes"}``)
with Entra's AADSTS texts; directory-API errors use the ``{"error": {code, message}}`` envelope
that Microsoft Graph uses.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.core.clock import isoformat
from moorage.core.errors import (
    InvalidArgument,
    MoorageError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from moorage.edge import base_url, form_body, guarded, json_response
from moorage.identity.errors import OAuthInvalidRequest, OAuthInvalidScope, OAuthUnsupportedGrant
from moorage.identity.records import (
    APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    IssuedSecret,
    Principal,
)
from moorage.identity.service import (
    GRAPH_AUDIENCE,
    MANAGEMENT_AUDIENCES,
    IdentityService,
    resource_for_scope,
)

_AADSTS = re.compile(r"^AADSTS(\d+)")


def _oauth_error(request: Request, error: MoorageError) -> Response:
    status = (
        401 if isinstance(error, Unauthenticated) else 500 if error.code == "InternalServerError" else 400
    )
    code = error.code if status != 500 else "server_error"
    trace = str(uuid.uuid4())
    now = datetime.now(UTC)
    match = _AADSTS.match(error.message)
    body: dict[str, Any] = {
        "error": code,
        "error_description": f"{error.message}\r\nTrace ID: {trace}\r\nCorrelation ID: "
        f"{request.headers.get('client-request-id', trace)}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
        "error_codes": [int(match.group(1))] if match else [],
        "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
        "trace_id": trace,
        "correlation_id": request.headers.get("client-request-id", trace),
    }
    return json_response(body, status)


def _graph_error(_request: Request, error: MoorageError) -> Response:
    if isinstance(error, Unauthenticated):
        status = 401
    elif isinstance(error, PermissionDenied):
        status = 403
    elif isinstance(error, NotFound):
        status = 404
    elif isinstance(error, InvalidArgument):
        status = 400
    else:
        status = 500
    return json_response({"error": {"code": error.code, "message": error.message}}, status)


def _openid_configuration(base: str, tenant: str, issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "moorage",
        "tenant_id": tenant,
    }


def _token_body(token: Any, *, v1: bool) -> dict[str, Any]:
    if v1:
        # The v1 endpoint answers with strings, as Entra does.
        return {
            "token_type": "Bearer",
            "expires_in": str(token.expires_in),
            "ext_expires_in": str(token.expires_in),
            "expires_on": str(token.expires_on),
            "not_before": str(token.not_before),
            "resource": token.resource,
            "access_token": token.token,
        }
    return {
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "ext_expires_in": token.expires_in,
        "access_token": token.token,
    }


def _sp_body(principal: Principal, tenant_id: str, secrets: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": principal.object_id,
        "appId": principal.app_id,
        "displayName": principal.display_name,
        "servicePrincipalType": principal.kind.value,
        "appOwnerOrganizationId": tenant_id,
        "createdDateTime": isoformat(principal.created_at),
    }
    if principal.resource_id:
        body["alternativeNames"] = [principal.resource_id]
    if secrets is not None:
        body["passwordCredentials"] = [
            {
                "keyId": s.key_id,
                "hint": s.hint,
                "startDateTime": isoformat(s.created_at),
                "endDateTime": isoformat(s.expires_at) if s.expires_at else None,
            }
            for s in secrets
        ]
    return body


def _issued_body(issued: IssuedSecret) -> dict[str, Any]:
    """Shaped like ``az ad sp create-for-rbac``: the only response that carries a secret."""
    return {
        "appId": issued.principal.app_id,
        "id": issued.principal.object_id,
        "displayName": issued.principal.display_name,
        "password": issued.value,
        "tenant": issued.principal.tenant_id,
        "keyId": issued.info.key_id,
        "endDateTime": isoformat(issued.info.expires_at) if issued.info.expires_at else None,
    }


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}``."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON, bad UTF-8 and oversized integers; RecursionError, nesting.
        raise InvalidArgument("The request body must be a JSON object.", code="Request_BadRequest") from exc
    if not isinstance(body, dict):
        raise InvalidArgument("The request body must be a JSON object.", code="Request_BadRequest")
    return body


class IdentityEdge:
    """Builds the Starlette routes of the identity service."""

    def __init__(self, service: IdentityService) -> None:
        self._service = service

    def routes(self) -> list[BaseRoute]:
        oauth = guarded(_oauth_error)
        graph = guarded(_graph_error)
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", oauth(self.openid_v2), methods=["GET"]),
            Route("/{tenant}/.well-known/openid-configuration", oauth(self.openid_v1), methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", oauth(self.jwks), methods=["GET"]),
            Route("/{tenant}/discovery/keys", oauth(self.jwks), methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", oauth(self.token_v2), methods=["POST"]),
            Route("/{tenant}/oauth2/token", oauth(self.token_v1), methods=["POST"]),
            Route("/moorage/directory/tenants", graph(self.tenant_create), methods=["POST"]),
            Route(
                "/moorage/directory/{tenant}/servicePrincipals",
                graph(self.sp_collection),
                methods=["GET", "POST"],
            ),
            Route(
                "/moorage/directory/{tenant}/servicePrincipals/{ref}",
                graph(self.sp_item),
                methods=["GET", "DELETE"],
            ),
            Route(
                "/moorage/directory/{tenant}/servicePrincipals/{ref}/resetCredentials",
                graph(self.sp_reset),
                methods=["POST"],
            ),
        ]

    # -- discovery -----------------------------------------------------------------------------

    async def _tenant(self, request: Request) -> str:
        tenant = str(request.path_params["tenant"]).lower()
        await self._service.get_tenant(tenant)
        return tenant

    async def openid_v2(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        issuer = self._service.authority.issuer(tenant)
        return json_response(_openid_configuration(base_url(request), tenant, issuer))

    async def openid_v1(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        base = base_url(request)
        body = _openid_configuration(base, tenant, self._service.authority.issuer(tenant))
        body["token_endpoint"] = f"{base}/{tenant}/oauth2/token"
        body["authorization_endpoint"] = f"{base}/{tenant}/oauth2/authorize"
        body["jwks_uri"] = f"{base}/{tenant}/discovery/keys"
        return json_response(body)

    async def jwks(self, _request: Request) -> Response:
        return json_response(self._service.authority.keys.jwks())

    # -- tokens --------------------------------------------------------------------------------

    async def _client_credentials(self, request: Request, resource: str) -> Any:
        form = await form_body(request)
        grant = form.get("grant_type", "")
        if not grant:
            raise OAuthInvalidRequest(
                "AADSTS900144: The request body must contain the following parameter: 'grant_type'."
            )
        if grant != "client_credentials":
            raise OAuthUnsupportedGrant(
                f"AADSTS70003: The app requested an unsupported grant type '{grant}'."
            )
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        if not client_id:
            raise OAuthInvalidRequest(
                "AADSTS900144: The request body must contain the following parameter: 'client_id'."
            )
        if not secret:
            raise OAuthInvalidRequest(
                "AADSTS7000218: The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'."
            )
        tenant = await self._tenant(request)
        return await self._service.client_credentials(tenant, client_id, secret, resource)

    async def token_v2(self, request: Request) -> Response:
        form = await form_body(request)
        scope = form.get("scope", "").strip()
        if not scope:
            raise OAuthInvalidRequest(
                "AADSTS900144: The request body must contain the following parameter: 'scope'."
            )
        scopes = scope.split()
        defaults = [s for s in scopes if s.endswith("/.default")]
        if len(defaults) != 1:
            raise OAuthInvalidScope(
                f"AADSTS1002012: The provided value for scope {scope} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI)."
            )
        token = await self._client_credentials(request, resource_for_scope(defaults[0]))
        return json_response(_token_body(token, v1=False))

    async def token_v1(self, request: Request) -> Response:
        form = await form_body(request)
        resource = form.get("resource", "").strip()
        if not resource:
            raise OAuthInvalidRequest(
                "AADSTS900144: The request body must contain the following parameter: 'resource'."
            )
        token = await self._client_credentials(request, resource)
        return json_response(_token_body(token, v1=True))

    # -- directory API -------------------------------------------------------------------------

    async def _directory_admin(
        self, request: Request, tenant: str | None = None, role: str = APPLICATION_ADMINISTRATOR
    ) -> str:
        """Authenticate the caller and require a directory role (default: Application
        Administrator) in the tenant of the path (``"*"``: in the caller's own tenant)."""
        tenant = tenant or str(request.path_params["tenant"]).lower()
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Access token is empty.", code="InvalidAuthenticationToken")
        claims = self._service.verify(
            token.strip(), (*MANAGEMENT_AUDIENCES, GRAPH_AUDIENCE, GRAPH_AUDIENCE + "/")
        )
        tenant = tenant if tenant != "*" else claims.tenant_id
        if claims.tenant_id != tenant:
            raise PermissionDenied(
                "The access token was issued for another tenant.", code="Authorization_RequestDenied"
            )
        caller = await self._service.principal(claims.object_id)
        if caller is None or role not in caller.directory_roles:
            raise PermissionDenied(
                "Insufficient privileges to complete the operation.",
                code="Authorization_RequestDenied",
            )
        return tenant

    async def tenant_create(self, request: Request) -> Response:
        """Create a tenant with an administrator principal of its own (Global Administrator only)."""
        await self._directory_admin(request, tenant="*", role=GLOBAL_ADMINISTRATOR)
        body = await _json_object(request)
        name = body.get("displayName") or "moorage tenant"
        if not isinstance(name, str):
            raise InvalidArgument("displayName must be a string.", code="Request_BadRequest")
        tenant = await self._service.create_tenant(name)
        issued = await self._service.create_application(
            tenant.id, f"{name} administrator", directory_roles=[APPLICATION_ADMINISTRATOR]
        )
        return json_response({"tenantId": tenant.id, "displayName": name, **_issued_body(issued)}, 201)

    async def sp_collection(self, request: Request) -> Response:
        tenant = await self._directory_admin(request)
        if request.method == "GET":
            principals = await self._service.list_principals(tenant)
            return json_response({"value": [_sp_body(p, tenant) for p in principals]})
        body = await _json_object(request)
        if not isinstance(body.get("displayName", ""), str):
            raise InvalidArgument("displayName must be a string.", code="Request_BadRequest")
        name = body.get("displayName") or f"moorage-sp-{datetime.now(UTC):%Y-%m-%d-%H-%M-%S}"
        issued = await self._service.create_application(tenant, name)
        return json_response(_issued_body(issued), 201)

    async def sp_item(self, request: Request) -> Response:
        tenant = await self._directory_admin(request)
        ref = str(request.path_params["ref"])
        if request.method == "DELETE":
            await self._service.delete_principal(tenant, ref)
            return Response(status_code=204)
        principal = await self._service.find_principal(tenant, ref)
        secrets = await self._service.list_secrets(principal.object_id)
        return json_response(_sp_body(principal, tenant, secrets))

    async def sp_reset(self, request: Request) -> Response:
        tenant = await self._directory_admin(request)
        append = bool((await _json_object(request)).get("append"))
        issued = await self._service.reset_secret(tenant, str(request.path_params["ref"]), append=append)
        return json_response(_issued_body(issued))
