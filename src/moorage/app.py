"""Composition root: settings → backends → services → ASGI app.

The only module that knows every subsystem. It wires the protocols each subsystem owns (none of
them imports another) and performs the first-start bootstrap: a tenant, a default subscription,
and a bootstrap service principal with Owner on that subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import re
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage import __version__
from moorage.arm import schema as arm_schema
from moorage.arm.app import ArmEdge, Extension
from moorage.arm.diagnostics import DiagnosticsEdge
from moorage.arm.dispatch import ProviderGateway
from moorage.arm.lro import Operations
from moorage.arm.resources.base import ProviderRegistry
from moorage.arm.resources.container_groups import container_instance_providers
from moorage.arm.resources.deployments import DeploymentsProvider, deployment_providers
from moorage.arm.resources.managed_identities import UserAssignedIdentities
from moorage.arm.resources.registries import registry_providers
from moorage.arm.resources.resource_groups import ResourceGroups
from moorage.arm.resources.role_assignments import RoleAssignments, RoleDefinitions
from moorage.arm.store import ArmStore, Subscription
from moorage.config import Settings
from moorage.core.clock import Clock, SystemClock
from moorage.core.errors import MoorageError
from moorage.core.log import get_logger
from moorage.core.sealing import Sealer
from moorage.deployments import schema as deployments_schema
from moorage.deployments.service import Deployments
from moorage.diagnose.probes import FirewallVerdict, RoleFact
from moorage.diagnose.redaction import REDACTED
from moorage.diagnose.service import Diagnostician
from moorage.exec_sockets import ExecSocketEdge
from moorage.identity import roles
from moorage.identity import schema as identity_schema
from moorage.identity.http import IdentityEdge
from moorage.identity.keys import KeyRing
from moorage.identity.records import APPLICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR
from moorage.identity.service import IdentityService
from moorage.identity.tokens import TokenAuthority
from moorage.instances import schema as instances_schema
from moorage.instances.access import ImageAccess, RegistryFacts
from moorage.instances.content import Leases
from moorage.instances.exec_sessions import ExecSessions
from moorage.instances.identity_endpoint import (
    IdentityEndpoint,
    IdentitySecrets,
    ManagedIdentityFacts,
    ManagedIdentityToken,
    load_key,
)
from moorage.instances.images import ImageSource, TransportRouter
from moorage.instances.runtime.base import Runtime
from moorage.instances.runtime.fake import FakeRuntime
from moorage.instances.runtime.runc.network import SandboxNetwork
from moorage.instances.runtime.runc.reconcile import Reconciler, ReconcileReport
from moorage.instances.runtime.runc.runtime import RuncRuntime
from moorage.instances.service import ContainerGroups
from moorage.instances.snapshots import Snapshotter
from moorage.listeners import PlainListener, UvicornListeners
from moorage.registry import schema as registry_schema
from moorage.registry.auth import Authorizer, RegistryTokens
from moorage.registry.content import Content
from moorage.registry.gc import GarbageCollector
from moorage.registry.http.gate import Gate
from moorage.registry.http.routes import registry_app
from moorage.registry.interfaces import EntraPrincipal
from moorage.registry.network import Origin, decide
from moorage.registry.platform import PlatformTransport
from moorage.registry.service import Registries
from moorage.store.blobs import BlobStore, open_blob_store
from moorage.store.blobs.memory import MemoryBlobStore
from moorage.store.meta import MetaStore
from moorage.tls import write_private

log = get_logger("app")

BOOTSTRAP_FILE = "bootstrap.json"
RUNC = Path("/usr/sbin/runc")
CONMON = Path("/usr/bin/conmon")
ISSUER_FILE = "issuer.json"
IDENTITY_ENDPOINT_KEY = "identity-endpoint.key"


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

    def __init__(
        self, settings: Settings, public_url: str, listeners: UvicornListeners, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.listeners = listeners
        self.clock = clock or SystemClock()
        self.meta: MetaStore | None = None
        self._reconciling: asyncio.Task[None] | None = None  # the runtime's periodic reconciler

    async def start(self) -> None:
        """Open the store, migrate, bootstrap on first start, resume operations, build the app."""
        settings = self.settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.meta = await MetaStore.open(settings.db_url)
        await self.meta.migrate(
            [
                *identity_schema.MIGRATIONS,
                *arm_schema.MIGRATIONS,
                *registry_schema.MIGRATIONS,
                *instances_schema.MIGRATIONS,
                *deployments_schema.MIGRATIONS,
            ]
        )
        keys = KeyRing.load(settings.keys_dir)
        self.authority = TokenAuthority(
            keys, self.clock, settings.access_token_lifetime_s, self._issuer_base()
        )
        self.identity = IdentityService(self.meta, self.authority, self.clock)
        self.arm_store = ArmStore(self.meta, self.clock)
        self.operations = Operations(self.meta, self.clock)
        self._compose_registry(keys_dir=settings.keys_dir)
        self.providers = ProviderRegistry()
        self.resource_groups = ResourceGroups(self.arm_store, self.operations, self.providers)
        for provider in (
            self.resource_groups,
            UserAssignedIdentities(self.arm_store, self.identity),
            RoleAssignments(self.arm_store, self.identity),
            RoleDefinitions(),
            *registry_providers(self.arm_store, self.registries, self.content),
        ):
            self.providers.add(provider)
        self.bootstrap = await self._bootstrap()
        self.arm_extensions: dict[str, Extension] = {}  # filled by _compose_diagnostics
        arm = ArmEdge(
            self.arm_store,
            self.identity,
            self.operations,
            self.providers,
            self.resource_groups,
            self._home_tenant,
            extensions=self.arm_extensions,
        )
        routes = [*arm.routes(), *IdentityEdge(self.identity).routes()]
        self.listeners.serve_app(AccessLog(self.registry_app))
        await self.registries.start()
        self.registry_gc.start()
        self._compose_images()
        await self._compose_groups()
        self._compose_deployments()
        self._compose_diagnostics()
        routes.extend(self.exec_edge.routes())
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

    def _compose_images(self) -> None:
        """The platform's image puller: its own content store, pulls of moorage's registries on
        the platform channel, managed-identity tokens minted by identity."""
        settings = self.settings
        self.node_blobs = open_blob_store(settings.blob_store, settings.home / "node" / "content")
        self.node_leases = Leases(settings.home / "node" / "leases")
        self.platform_router = _PlatformRouter(self.registries, self.registry_app, settings.platform_address)
        self.image_source = _image_source(self.node_blobs, self.platform_router, leases=self.node_leases)
        self.image_access = ImageAccess(
            self.image_source,
            _IdentityTokensAdapter(self.identity),
            _RegistryFactsAdapter(self.registries),
            platform_address=settings.platform_address,
        )

    def _compose_runtime(self) -> Runtime:
        """The container runtime ``MOORAGE_RUNTIME`` names; ``auto`` is runc when this process is
        root and runc and conmon are installed, else the in-memory fake."""
        settings = self.settings
        choice = settings.runtime
        if choice == "auto":
            runc_usable = os.geteuid() == 0 and RUNC.exists() and CONMON.exists()
            choice = "runc" if runc_usable else "fake"
        if choice == "fake":
            return FakeRuntime()
        prefix = settings.runtime_prefix
        self.sandbox_network = SandboxNetwork(
            settings.home / "node" / "network",
            bridge=f"{prefix}0",
            subnet=settings.runtime_subnet,
            prefix=prefix,
            nft_table=prefix,
        )
        return RuncRuntime(
            settings.home / "node" / "runtime", network=self.sandbox_network, runc=str(RUNC), prefix=prefix
        )

    async def _compose_groups(self) -> None:
        """Container groups: the runtime (reconciled first: containers that outlived the last run
        are adopted), the service, its providers, and its watchers re-attached."""
        assert self.meta is not None  # noqa: S101 - opened by start()
        settings = self.settings
        self.runtime = self._compose_runtime()
        if isinstance(self.runtime, RuncRuntime):
            report = await self.runtime.reconcile()
            log.info(
                "runtime reconciled",
                adopted=len(report.adopted),
                exited=len(report.exited),
                removed=len(report.removed),
                errors=report.errors,
            )
        snapshots = Snapshotter(settings.home / "node")
        snapshots.discard_incomplete()
        identity_secrets = self._bind_identity_endpoint()
        self.container_groups = ContainerGroups(
            self.meta,
            sealer=Sealer.load(settings.keys_dir / "sealing.key"),
            runtime=self.runtime,
            access=self.image_access,
            blobs=self.node_blobs,
            snapshots=snapshots,
            identities=_IdentityDirectoryAdapter(self.identity),
            clock=self.clock,
            leases=self.node_leases,
            work_dir=settings.home / "node",
            identity_env=identity_secrets,
        )
        self.exec_sessions = ExecSessions(
            self.runtime, self.container_groups, self.clock, ttl_s=settings.exec_session_ttl_s
        )
        self.exec_edge = ExecSocketEdge(self.exec_sessions, self.public_url)
        if hasattr(self, "identity_listener") and identity_secrets is not None:
            endpoint = IdentityEndpoint(
                identity_secrets, self.container_groups, _IdentityTokensAdapter(self.identity)
            )
            await self.identity_listener.serve(AccessLog(endpoint))
        for provider in container_instance_providers(
            self.arm_store,
            self.operations,
            self.container_groups,
            self.identity,
            exec_sessions=self.exec_sessions,
            socket_uri=self.exec_edge.uri,
        ):
            self.providers.add(provider)
        resumed = await self.container_groups.resume()
        log.info("container groups resumed", runtime=type(self.runtime).__name__, groups=resumed)
        interval = settings.runtime_reconcile_interval_s
        if isinstance(self.runtime, RuncRuntime) and interval > 0:
            groups = self.container_groups

            async def after_round(_report: ReconcileReport) -> None:
                await groups.supervise()  # exits the round recorded reach the instance views

            self._reconciling = asyncio.create_task(
                Reconciler(self.runtime).run_forever(interval, after_round=after_round),
                name="runtime-reconciler",
            )

    def _bind_identity_endpoint(self) -> IdentitySecrets | None:
        """Bind the containers' managed-identity endpoint on the sandbox bridge's gateway address
        (runc runtime only: the fake runs no processes); its secrets for the group service.

        A taken port does not stop the server (groups without an identity are unaffected): groups
        with one then fail to provision with the reason, and the error is logged now."""
        if not hasattr(self, "sandbox_network"):
            return None
        host, port = self.sandbox_network.gateway, self.settings.identity_endpoint_port
        key = load_key(self.settings.keys_dir / IDENTITY_ENDPOINT_KEY)
        listener = PlainListener(host, port)
        try:
            bound = listener.bind()
        except OSError as exc:
            log.error("container identity endpoint unavailable", host=host, port=port, error=str(exc))
            reason = (
                f"The managed identity endpoint for containers cannot listen on {host}:{port} "
                f"({exc.strerror or exc}). Set MOORAGE_IDENTITY_ENDPOINT_PORT to a free port (0: any) "
                "and restart the server."
            )
            return IdentitySecrets(key, f"http://{host}:{port}/msi/token", unavailable=reason)
        self.identity_listener = listener
        return IdentitySecrets(key, f"http://{host}:{bound}/msi/token")

    def _compose_deployments(self) -> None:
        """Template deployments, deploying through the same providers as the ARM edge."""
        assert self.meta is not None  # noqa: S101 - opened by start()
        gateway = ProviderGateway(self.arm_store, self.identity, self.operations, self.providers)
        self.deployments = Deployments(
            self.meta, Sealer.load(self.settings.keys_dir / "sealing.key"), self.clock, gateway
        )
        for provider in deployment_providers(self.arm_store, self.operations, self.deployments):
            self.providers.add(provider)
            if isinstance(provider, DeploymentsProvider):
                self.deployments_provider = provider

    def _compose_diagnostics(self) -> None:
        """``moorage diagnose`` (``Moorage.Diagnostics`` on the ARM edge): the platform's own check
        over a fresh traced image source built like the platform's, the registry's firewall and
        identity's role assignments through diagnose's protocols."""
        diagnostician = Diagnostician(
            self.image_access,
            self.platform_router,
            lambda router: _image_source(MemoryBlobStore(), router),
            firewall=_FirewallAdapter(
                self.registries, self.settings.platform_address, audit=self.settings.registry_firewall_audit
            ),
            roles=_RoleDirectoryAdapter(self.identity),
            identities=_IdentityTokensAdapter(self.identity),
        )
        edge = DiagnosticsEdge(
            store=self.arm_store,
            identity=self.identity,
            diagnostician=diagnostician,
            groups=self.container_groups,
            deployments=self.deployments,
            deployments_provider=self.deployments_provider,
            server_info=self.server_info,
        )
        self.arm_extensions.update(edge.extensions())

    def server_info(self) -> dict[str, Any]:
        """The version and settings a support bundle carries (nothing secret: a database URL's
        password and the values of extra settings are left out)."""
        settings = self.settings
        shown: dict[str, Any] = {}
        for item in dataclasses.fields(settings):
            value = getattr(settings, item.name)
            if item.name == "extra":
                value = dict.fromkeys(value, REDACTED)
            elif item.name == "database_url" and value:
                value = re.sub(r"://([^:/@]*):[^@/]*@", rf"://\1:{REDACTED}@", value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            shown[item.name] = value
        return {
            "version": __version__,
            "endpoint": self.public_url,
            "python": platform.python_version(),
            "runtime": type(self.runtime).__name__ if hasattr(self, "runtime") else None,
            "platformAddress": settings.platform_address,
            "settings": shown,
        }

    def _compose_registry(self, keys_dir: Path) -> None:
        """The container registry, wired to identity through the protocols it owns."""
        assert self.meta is not None  # noqa: S101 - opened by start() just before
        settings = self.settings
        self.blobs = open_blob_store(settings.blob_store, settings.home / "content")
        self.content = Content(self.meta, self.blobs, self.clock)
        self.registries = Registries(
            self.meta,
            self.content,
            Sealer.load(keys_dir / "sealing.key"),
            self.listeners,
            self.clock,
            login_host=settings.registry_host or _url_host(settings.host),
        )
        self.registry_tokens = RegistryTokens(KeyRing.load(keys_dir / "registry"), self.clock)
        self.gate = Gate(
            self.registries,
            Authorizer(self.identity, settings.open_registries),
            self.registry_tokens,
            _EntraAdapter(self.identity),
            _ClientSecretsAdapter(self.identity),
            audit=settings.registry_firewall_audit,
            trusted_proxies=settings.trusted_proxies,
            platform_address=settings.platform_address,
        )
        # No slash merging here: a repository name with '//' is invalid, not another name.
        self.registry_app: ASGIApp = registry_app(self.gate, self.content)
        self.registry_gc = GarbageCollector(
            self.content,
            upload_ttl_s=settings.registry_upload_ttl_s,
            interval_s=settings.registry_gc_interval_s,
        )

    def platform_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client on the platform channel (the trusted path into the registry)."""
        return httpx.AsyncClient(
            transport=PlatformTransport(self.registry_app, self.settings.platform_address), **kwargs
        )

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
        # Containers keep running: only the supervision stops; the next start re-attaches.
        # Exec sessions do not outlive the server: their processes are killed.
        if hasattr(self, "exec_sessions"):
            await self.exec_sessions.close()
        if self._reconciling is not None:
            self._reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciling
        if hasattr(self, "container_groups"):
            await self.container_groups.close()
        await self.registry_gc.stop()
        if hasattr(self, "image_source"):
            await self.image_source.aclose()
        await self.operations.shutdown()
        if hasattr(self, "identity_listener"):
            await self.identity_listener.close()
        if hasattr(self, "sandbox_network"):
            # The bridge and nftables table go only when no sandbox is left (teardown checks).
            try:
                removed = await self.sandbox_network.teardown()
            except (MoorageError, OSError) as exc:
                log.warning("sandbox network left in place", error=str(exc))
            else:
                log.info("sandbox network", removed=removed)
        await self.listeners.close_all()
        if self.meta is not None:
            await self.meta.close()


def _image_source(blobs: BlobStore, router: TransportRouter, *, leases: Leases | None = None) -> ImageSource:
    """The platform's image puller; ``moorage diagnose`` builds its traced ones here too, so the
    two cannot be configured apart."""
    return ImageSource(blobs, router=router, leases=leases)


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping, not binding


class _EntraAdapter:
    """identity's token verification, as the registry's ``EntraTokens``."""

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    def verify(self, token: str, audiences: Collection[str]) -> EntraPrincipal:
        claims = self._identity.verify(token, audiences)
        return EntraPrincipal(claims.tenant_id, claims.object_id, claims.app_id, claims.resource_id)


class _ClientSecretsAdapter:
    """identity's client authentication, as the registry's ``ClientSecrets``."""

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    async def authenticate(self, tenant_id: str, app_id: str, secret: str) -> EntraPrincipal | None:
        try:
            principal = await self._identity.authenticate_client(tenant_id, app_id, secret)
        except MoorageError:
            return None
        return EntraPrincipal(principal.tenant_id, principal.object_id, principal.app_id, None)


class _PlatformRouter:
    """Pulls of moorage's own registries — by login server or Azure's ``<name>.azurecr.io`` — go
    through the in-process platform channel; everything else over the network."""

    def __init__(self, registries: Registries, registry_app: ASGIApp, platform_address: str) -> None:
        self._registries = registries
        self._transport = PlatformTransport(registry_app, platform_address)

    def route(self, host: str) -> tuple[str, httpx.AsyncBaseTransport | None]:
        local = self._registries.local_login_server(host)
        if local is None:
            return host, None
        return local, self._transport


class _IdentityTokensAdapter:
    """identity's managed-identity token issuer, as instances' ``ManagedIdentityTokens`` (pulls)
    and ``IdentityTokenIssuer`` (the containers' identity endpoint)."""

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    async def token(self, identity_resource_id: str, audience: str) -> str:
        return (await self._identity.token_for_managed_identity(identity_resource_id, audience)).token

    async def principal_id(self, identity_resource_id: str) -> str | None:
        principal = await self._identity.managed_identity(identity_resource_id)
        return principal.object_id if principal else None

    # -- as the container identity endpoint's ``IdentityTokenIssuer``

    async def facts(self, identity_resource_id: str) -> ManagedIdentityFacts | None:
        principal = await self._identity.managed_identity(identity_resource_id)
        if principal is None or principal.resource_id is None:
            return None
        return ManagedIdentityFacts(principal.resource_id, principal.app_id, principal.object_id)

    async def issue(self, identity_resource_id: str, audience: str) -> ManagedIdentityToken:
        issued = await self._identity.token_for_managed_identity(identity_resource_id, audience)
        return ManagedIdentityToken(issued.token, issued.expires_on)


class _FirewallAdapter:
    """The registry's firewall rules, as diagnose's ``FirewallPolicy``."""

    def __init__(self, registries: Registries, platform_address: str, *, audit: bool) -> None:
        self._registries = registries
        self._address = platform_address
        self._audit = audit

    async def verdict(self, host: str, *, managed_identity: bool) -> FirewallVerdict | None:
        registry = await self._registries.by_login_server(host)
        if registry is None:
            return None
        decision = decide(registry, self._address, Origin.PLATFORM, managed_identity=managed_identity)
        by_address = decide(registry, self._address, Origin.NETWORK, managed_identity=False)
        return FirewallVerdict(
            decision.allowed,
            decision.reason,
            by_address.allowed,
            by_address.reason,
            by_address.matched_rule,
            audit=self._audit,
        )


class _RoleDirectoryAdapter:
    """identity's principals and role assignments, as diagnose's ``RoleDirectory``."""

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    async def service_principal(self, tenant_id: str, app_id: str) -> str | None:
        try:
            return (await self._identity.find_principal(tenant_id, app_id)).object_id
        except MoorageError:
            return None

    async def assignments(self, principal_id: str, scope: str, action: str) -> list[RoleFact]:
        out = []
        for assignment in await self._identity.assignments_of(principal_id):
            role = roles.role_by_id(assignment.role_definition_id)
            grants = (
                role is not None
                and roles.scope_contains(assignment.scope, scope)
                and roles.role_permits(role, action)
            )
            name = role.role_name if role is not None else assignment.role_definition_id
            out.append(RoleFact(assignment.id, name, assignment.scope, grants))
        return out


class _IdentityDirectoryAdapter:
    """identity's managed identities, as instances' ``IdentityDirectory``."""

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    async def user_assigned_exists(self, resource_id: str) -> bool:
        return await self._identity.managed_identity(resource_id) is not None


class _RegistryFactsAdapter:
    """The registry's settings, as instances' ``RegistryFactsSource`` (for diagnosis)."""

    def __init__(self, registries: Registries) -> None:
        self._registries = registries

    async def facts(self, host: str) -> RegistryFacts | None:
        registry = await self._registries.by_login_server(host)
        if registry is None:
            return None
        s = registry.settings
        return RegistryFacts(
            name=registry.display_name,
            resource_id=registry.resource_id,
            login_server=registry.login_server,
            sku=s.sku.value,
            public_network_access=s.public_network_access,
            default_action=s.network_rule_set.default_action,
            ip_rules=s.network_rule_set.ip_rules,
            bypass=s.network_rule_bypass,
            admin_user_enabled=s.admin_user_enabled,
            anonymous_pull_enabled=s.anonymous_pull_enabled,
        )
