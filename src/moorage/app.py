"""Composition root: settings → backends → services → ASGI app.

The only module that knows every subsystem. It wires the protocols each subsystem owns (none of
them imports another) and performs the first-start bootstrap: a tenant, a default subscription,
and a bootstrap service principal with Owner on that subscription.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage import __version__
from moorage.arm import schema as arm_schema
from moorage.arm.app import ArmEdge
from moorage.arm.lro import Operations
from moorage.arm.resources.base import ProviderRegistry
from moorage.arm.resources.managed_identities import UserAssignedIdentities
from moorage.arm.resources.resource_groups import ResourceGroups
from moorage.arm.resources.role_assignments import RoleAssignments, RoleDefinitions
from moorage.arm.store import ArmStore, Subscription
from moorage.config import Settings
from moorage.core.clock import Clock, SystemClock
from moorage.core.log import get_logger
from moorage.identity import roles
from moorage.identity import schema as identity_schema
from moorage.identity.http import IdentityEdge
from moorage.identity.keys import KeyRing
from moorage.identity.records import APPLICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR
from moorage.identity.service import IdentityService
from moorage.identity.tokens import TokenAuthority
from moorage.store.meta import MetaStore
from moorage.tls import write_private

log = get_logger("app")

BOOTSTRAP_FILE = "bootstrap.json"
ISSUER_FILE = "issuer.json"


@dataclass(frozen=True)
class BootstrapInfo:
    tenant_id: str
    subscription_id: str
    client_id: str
    client_secret: str
    credentials_path: Path


class AccessLog:
    """Pure-ASGI access log: one line per request with method, path, status and duration.

    Query strings are left out (they can carry tokens in some flows); headers are never logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._log = get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client") or ("", 0)
            self._log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
                peer=client[0],
            )


class MergeSlashes:
    """Pure-ASGI path normalisation: runs of ``/`` in the path count as one, as ARM treats them.

    ``az cloud register --endpoint-resource-manager https://host:port/`` appends
    ``/metadata/endpoints`` to the endpoint it was given and so asks for ``//metadata/endpoints``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = re.sub("/{2,}", "/", scope["path"])
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = re.sub(b"/{2,}", b"/", raw)
        await self.app(scope, receive, send)


class Moorage:
    """The composed server: services plus the ASGI app that exposes them."""

    def __init__(self, settings: Settings, public_url: str, clock: Clock | None = None) -> None:
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.clock = clock or SystemClock()
        self.meta: MetaStore | None = None

    async def start(self) -> None:
        """Open the store, migrate, bootstrap on first start, resume operations, build the app."""
        settings = self.settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.meta = await MetaStore.open(settings.db_url)
        await self.meta.migrate([*identity_schema.MIGRATIONS, *arm_schema.MIGRATIONS])
        keys = KeyRing.load(settings.keys_dir)
        self.authority = TokenAuthority(
            keys, self.clock, settings.access_token_lifetime_s, self._issuer_base()
        )
        self.identity = IdentityService(self.meta, self.authority, self.clock)
        self.arm_store = ArmStore(self.meta, self.clock)
        self.operations = Operations(self.meta, self.clock)
        self.registry = ProviderRegistry()
        self.resource_groups = ResourceGroups(self.arm_store, self.operations, self.registry)
        for provider in (
            self.resource_groups,
            UserAssignedIdentities(self.arm_store, self.identity),
            RoleAssignments(self.arm_store, self.identity),
            RoleDefinitions(),
        ):
            self.registry.add(provider)
        self.bootstrap = await self._bootstrap()
        arm = ArmEdge(
            self.arm_store,
            self.identity,
            self.operations,
            self.registry,
            self.resource_groups,
            self._home_tenant,
        )
        routes = [*arm.routes(), *IdentityEdge(self.identity).routes()]
        self.app: ASGIApp = AccessLog(MergeSlashes(Starlette(routes=routes)))
        resumed = await self.operations.resume()
        if resumed:
            log.info("resumed operations", count=resumed)

    def _issuer_base(self) -> str:
        """The base URL of the token issuer, recorded in the data directory.

        An explicit ``public_url`` setting wins; otherwise the first address the server was
        reached at is kept, so that tokens issued before a restart still verify when the server
        comes back on another port (``--port 0``).
        """
        path = self.settings.home / ISSUER_FILE
        if self.settings.public_url is None and path.exists():
            recorded = json.loads(path.read_text()).get("issuerBase")
            if isinstance(recorded, str) and recorded:
                return recorded
        write_private(path, json.dumps({"issuerBase": self.public_url}).encode())
        return self.public_url

    async def _home_tenant(self) -> str:
        return self.bootstrap.tenant_id

    async def _bootstrap(self) -> BootstrapInfo:
        path = self.settings.home / BOOTSTRAP_FILE
        tenants = await self.identity.list_tenants()
        if tenants and path.exists():
            data = json.loads(path.read_text())
            return BootstrapInfo(
                data["tenantId"], data["subscriptionId"], data["clientId"], data["clientSecret"], path
            )
        if tenants:
            raise RuntimeError(
                f"{path} is missing but the data directory is initialised; restore it or start "
                "with an empty MOORAGE_HOME."
            )
        tenant = await self.identity.create_tenant("moorage")
        subscription = Subscription(str(uuid.uuid4()), tenant.id, "moorage", "Enabled")
        await self.arm_store.create_subscription(subscription)
        issued = await self.identity.create_application(
            tenant.id,
            "moorage-bootstrap",
            directory_roles=[APPLICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR],
            secret_lifetime=None,
        )
        await self.identity.create_role_assignment(
            tenant_id=tenant.id,
            scope=f"/subscriptions/{subscription.id}",
            name=str(uuid.uuid4()),
            role_definition_id=roles.OWNER,
            principal_id=issued.principal.object_id,
            principal_type="ServicePrincipal",
            created_by=None,
            description="moorage bootstrap principal",
        )
        info = BootstrapInfo(tenant.id, subscription.id, issued.principal.app_id, issued.value, path)
        write_private(
            path,
            json.dumps(
                {
                    "tenantId": info.tenant_id,
                    "subscriptionId": info.subscription_id,
                    "clientId": info.client_id,
                    "clientSecret": info.client_secret,
                },
                indent=2,
            ).encode(),
        )
        log.info("bootstrapped", tenant=tenant.id, subscription=subscription.id, credentials_file=str(path))
        return info

    def connection_info(self) -> dict[str, Any]:
        """What ``connection.json`` holds: how scripts and tests reach this server."""
        b = self.bootstrap
        return {
            "endpoint": self.public_url,
            "tenantId": b.tenant_id,
            "subscriptionId": b.subscription_id,
            "caPath": str(self.settings.ca_path),
            "clientId": b.client_id,
            "clientSecret": b.client_secret,
            "credentialsPath": str(b.credentials_path),
            "version": __version__,
        }

    def write_connection_file(self) -> Path:
        path = self.settings.connection_file
        write_private(path, json.dumps(self.connection_info(), indent=2).encode())
        return path

    async def close(self) -> None:
        await self.operations.shutdown()
        if self.meta is not None:
            await self.meta.close()
