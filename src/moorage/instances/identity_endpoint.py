"""The managed-identity endpoint inside container groups, in the protocol of Azure's hosting
platforms (App Service, Functions, Container Apps), so that ``ManagedIdentityCredential`` of the
Azure SDKs obtains tokens in a container.

Every container (and init container) of a group with an identity gets::

    IDENTITY_ENDPOINT=http://<bridge gateway>:<port>/msi/token    IDENTITY_HEADER=<secret>
    MSI_ENDPOINT=<the same URL>                                   MSI_SECRET=<the same secret>

and asks (azure-identity through MSAL, or any HTTP client)::

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>
        [&client_id=<guid> | &object_id=<guid> | &principal_id=<guid> | &mi_res_id=<ARM id>]
    X-IDENTITY-HEADER: <secret>

    200 {"access_token": "<JWT>", "expires_on": "<epoch seconds>", "resource": "<resource>",
         "token_type": "Bearer", "client_id": "<the identity's client id>"}

Errors are ``{"statusCode": <status>, "message": ..., "correlationId": ...}`` (MSAL reports
``statusCode, message``). The older dialect of ``MSI_ENDPOINT``/``MSI_SECRET`` (api-version
``2017-09-01``, header ``secret``, selector ``clientid``) is answered the same way.

**Which identity.** ``client_id``, ``object_id``/``principal_id`` (either of the system-assigned
or a user-assigned identity) or ``mi_res_id`` (a user-assigned identity's ARM id) select one;
without a selector the system-assigned identity answers, or else the group's only user-assigned
one. Ambiguous or unknown selections are ``400``.

**Authorisation** takes two independent checks. The TCP peer (forwarding headers are not
consulted) must be the address of a group's current sandbox, and the header must be that
sandbox's secret: HMAC-SHA256 under a random key (a 0600 file beside the other keys) of the group's
resource id and the sandbox id. The secret is thus unique per group and changes whenever the group
gets a new sandbox (start, restart, update), and nothing secret is stored per group; a container
that learns another group's secret still cannot use it from its own address. A missing header is
``401``, a wrong one (or a right one from the wrong address) ``403``. Secrets are never logged.

When the endpoint cannot listen (its port is taken on the gateway address), the server still
starts, and a group with an identity fails to provision with ``ManagedIdentityEndpointUnavailable``
naming the cause and the setting, rather than running without its identity.

Tokens come from the identity service through :class:`IdentityTokenIssuer` (wired in
``app.py``): the requested resource is the audience, ``oid``/``appid``/``tid`` are the identity's,
and the signing keys are moorage's own (``/.well-known`` JWKS).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from moorage.core.errors import MoorageError, NotFound, Unavailable
from moorage.core.log import get_logger
from moorage.instances.model import GroupIdentity

log = get_logger("instances.identity_endpoint")

TOKEN_PATH = "/msi/token"
HEADER = "x-identity-header"
LEGACY_HEADER = "secret"  # MSI_SECRET's header (api-version 2017-09-01)
LEGACY_API_VERSION = "2017-09-01"
FIRST_API_VERSION = "2019-08-01"
KEY_BYTES = 32
MAX_RESOURCE_CHARS = 2048
_API_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(-preview)?")
# Query parameters naming an identity, by the name the clients send.
_SELECTORS = {
    "client_id": "client_id",
    "clientid": "client_id",  # 2017-09-01
    "object_id": "object_id",
    "principal_id": "object_id",
    "mi_res_id": "mi_res_id",
    "msi_res_id": "mi_res_id",
}


@dataclass(frozen=True)
class ManagedIdentityFacts:
    """What identifies one managed identity to a client: its ARM id, client id and object id."""

    resource_id: str
    client_id: str
    principal_id: str


@dataclass(frozen=True)
class ManagedIdentityToken:
    """An access token minted for a managed identity; ``expires_on`` in epoch seconds."""

    access_token: str
    expires_on: int


class IdentityTokenIssuer(Protocol):
    """The identity service, as the endpoint needs it (wired in ``app.py``)."""

    async def facts(self, identity_resource_id: str) -> ManagedIdentityFacts | None:
        """The identity behind an ARM id (a user-assigned identity or a group's own id for its
        system-assigned identity), or ``None`` when there is none."""
        ...

    async def issue(self, identity_resource_id: str, audience: str) -> ManagedIdentityToken:
        """A token for the identity with ``audience`` as ``aud``; raises ``NotFound`` when the
        identity is gone."""
        ...


@dataclass(frozen=True)
class GroupSandbox:
    """A group's current sandbox: what the endpoint needs to authorise and answer its callers."""

    group_id: str
    sandbox_id: str
    identity: GroupIdentity | None


class SandboxDirectory(Protocol):
    """Finds the sandbox a request comes from (implemented by the container group service)."""

    async def sandboxes_at(self, address: str) -> list[GroupSandbox]:
        """Current sandboxes with this address (normally at most one)."""
        ...


class IdentityEnvironment(Protocol):
    """What the container group service injects into the containers of a group with an identity."""

    def environment(self, group_id: str, sandbox_id: str) -> dict[str, str]:
        """The variables to add; raises a ``MoorageError`` when the endpoint cannot serve them."""
        ...


def has_identity(identity: GroupIdentity | None) -> bool:
    """Whether a group with this ``identity`` has any managed identity (``None`` has none)."""
    return identity is not None and (identity.system_assigned or bool(identity.user_assigned))


def load_key(path: Path) -> bytes:
    """The endpoint's HMAC key at ``path``, created (random, mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()  # created concurrently
        try:
            os.write(fd, os.urandom(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise ValueError(f"the identity endpoint key {path} is truncated; remove it to make a new one")
    return key


class IdentityEndpointUnavailable(Unavailable):
    default_code = "ManagedIdentityEndpointUnavailable"


class IdentitySecrets:
    """The endpoint's address and the per-sandbox secrets (see the module docstring).

    ``unavailable`` says why the endpoint is not listening (``None``: it is); the containers'
    variables are then refused with :class:`IdentityEndpointUnavailable`."""

    def __init__(self, key: bytes, url: str, *, unavailable: str | None = None) -> None:
        self._key = key
        self.url = url
        self.unavailable = unavailable

    def __repr__(self) -> str:
        return f"IdentitySecrets(url={self.url!r})"  # never the key

    def secret(self, group_id: str, sandbox_id: str) -> str:
        message = f"identity-header\n{group_id.lower()}\n{sandbox_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def accepts(self, presented: str, group_id: str, sandbox_id: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.secret(group_id, sandbox_id).encode())

    def environment(self, group_id: str, sandbox_id: str) -> dict[str, str]:
        """The variables of a container in ``sandbox_id`` of ``group_id`` (raises
        :class:`IdentityEndpointUnavailable` when the endpoint is not listening)."""
        if self.unavailable is not None:
            raise IdentityEndpointUnavailable(self.unavailable)
        secret = self.secret(group_id, sandbox_id)
        return {
            "IDENTITY_ENDPOINT": self.url,
            "IDENTITY_HEADER": secret,
            "MSI_ENDPOINT": self.url,
            "MSI_SECRET": secret,
        }


class _Refused(Exception):
    """A request answered with an error (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class IdentityEndpoint:
    """The ASGI app behind ``IDENTITY_ENDPOINT`` (plain HTTP, on the bridge's gateway address)."""

    def __init__(
        self, secrets: IdentitySecrets, sandboxes: SandboxDirectory, issuer: IdentityTokenIssuer
    ) -> None:
        self._secrets = secrets
        self._sandboxes = sandboxes
        self._issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response: Response = await self._token(request)
        except _Refused as refused:
            response = _error(refused.status, refused.message)
        except Exception:
            log.exception("identity endpoint failed", path=request.url.path)
            response = _error(500, "The token could not be issued because of an internal error.")
        await response(scope, receive, send)

    async def _token(self, request: Request) -> Response:
        if request.url.path.rstrip("/") != TOKEN_PATH:
            raise _Refused(404, f"Not found. The token endpoint is {TOKEN_PATH}.")
        if request.method != "GET":
            raise _Refused(405, f"The method {request.method} is not allowed; use GET.")
        peer = request.client.host if request.client else ""
        sandbox = await self._authorise(request, peer)
        query = request.query_params
        api_version = query.get("api-version", "")
        _check_api_version(api_version)
        resource = query.get("resource", "")
        if not resource.strip():
            raise _Refused(400, "The query parameter 'resource' is required.")
        if len(resource) > MAX_RESOURCE_CHARS or any(ord(ch) < 0x20 for ch in resource):
            raise _Refused(400, "The query parameter 'resource' is not a valid resource URI.")
        chosen = await self._select(sandbox, _selector(query.multi_items()))
        try:
            token = await self._issuer.issue(chosen.resource_id, resource)
        except NotFound as exc:
            raise _Refused(400, exc.message) from exc
        except MoorageError as exc:
            log.warning("identity token not issued", group=sandbox.group_id, code=exc.code)
            raise _Refused(500, exc.message) from exc
        log.info(
            "identity token issued",
            group=sandbox.group_id,
            identity=chosen.resource_id,
            resource=resource,
            peer=peer,
        )
        return JSONResponse(
            {
                "access_token": token.access_token,
                "expires_on": str(token.expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": chosen.client_id,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _authorise(self, request: Request, peer: str) -> GroupSandbox:
        presented = request.headers.get(HEADER) or request.headers.get(LEGACY_HEADER)
        if not presented:
            log.warning("identity endpoint refused", peer=peer, reason="no header")
            raise _Refused(401, "The request has no X-IDENTITY-HEADER header.")
        candidates = await self._sandboxes.sandboxes_at(peer) if peer else []
        for sandbox in candidates:
            if self._secrets.accepts(presented, sandbox.group_id, sandbox.sandbox_id):
                return sandbox
        log.warning("identity endpoint refused", peer=peer, reason="header not valid for this address")
        raise _Refused(403, "The X-IDENTITY-HEADER value is not valid for this caller.")

    async def _select(self, sandbox: GroupSandbox, selector: tuple[str, str] | None) -> ManagedIdentityFacts:
        identity = sandbox.identity
        if identity is None or not has_identity(identity):
            raise _Refused(400, "No managed identity is assigned to this container group.")
        system = sandbox.group_id if identity.system_assigned else None
        if selector is None:
            if system is not None:
                return await self._facts(system, "The system-assigned identity of this container group")
            if len(identity.user_assigned) == 1:
                only = identity.user_assigned[0]
                return await self._facts(only, f"The user-assigned identity '{only}'")
            raise _Refused(
                400,
                "This container group has no system-assigned identity and "
                f"{len(identity.user_assigned)} user-assigned identities; select one with "
                "client_id, object_id or mi_res_id.",
            )
        kind, value = selector
        wanted = value.strip().lower()
        if kind == "mi_res_id":
            listed = identity.find_user_assigned(value.strip())
            if listed is None:
                raise _Refused(
                    400, f"The user-assigned identity '{value}' is not assigned to this container group."
                )
            return await self._facts(listed, f"The user-assigned identity '{listed}'")
        for resource_id in ([system] if system else []) + list(identity.user_assigned):
            facts = await self._issuer.facts(resource_id)
            if facts is None:
                continue
            found = facts.client_id if kind == "client_id" else facts.principal_id
            if found.lower() == wanted:
                return facts
        raise _Refused(400, f"No managed identity of this container group has {kind} '{value}'.")

    async def _facts(self, resource_id: str, what: str) -> ManagedIdentityFacts:
        facts = await self._issuer.facts(resource_id)
        if facts is None:
            raise _Refused(400, f"{what} does not exist.")
        return facts


def _check_api_version(api_version: str) -> None:
    if not api_version:
        raise _Refused(400, "The query parameter 'api-version' is required (2019-08-01 or later).")
    match = _API_VERSION.fullmatch(api_version)
    if match is None or (api_version != LEGACY_API_VERSION and match.group(1) < FIRST_API_VERSION):
        raise _Refused(400, f"The api-version '{api_version}' is not supported; use 2019-08-01 or later.")


def _selector(items: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The one identity selector among the query parameters (None: none), or a 400."""
    found = [(_SELECTORS[name.lower()], value) for name, value in items if name.lower() in _SELECTORS]
    found = [(kind, value) for kind, value in found if value.strip()]
    if len(found) > 1:
        raise _Refused(400, "Only one of client_id, object_id (principal_id) and mi_res_id may be given.")
    return found[0] if found else None


def _error(status: int, message: str) -> JSONResponse:
    body = {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


__all__ = [
    "GroupSandbox",
    "IdentityEndpoint",
    "IdentityEndpointUnavailable",
    "IdentityEnvironment",
    "IdentitySecrets",
    "IdentityTokenIssuer",
    "ManagedIdentityFacts",
    "ManagedIdentityToken",
    "SandboxDirectory",
    "has_identity",
    "load_key",
]
