"""Registries as the data plane knows them: records, login servers, admin credentials, scope maps
and repository-scoped tokens. The ARM provider for ``Microsoft.ContainerRegistry/registries``
drives this; the HTTP edge reads from it.

Each registry gets a login server of its own, ``<host>:<port>``: a TCP listener that serves only
that registry, so real clients (skopeo, podman, docker, oras, the az CLI) reach it with no DNS or
hosts-file changes. The port is kept across restarts.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from moorage.core import passwords
from moorage.core.clock import Clock
from moorage.core.errors import AlreadyExists, InvalidArgument, NotFound
from moorage.core.log import get_logger
from moorage.registry import schema as t
from moorage.registry.content import Content
from moorage.registry.interfaces import Listeners, SecretSealer
from moorage.registry.records import (
    NetworkRuleSet,
    Registry,
    RegistrySettings,
    RepositoryToken,
    ScopeMap,
    Sku,
    TokenPassword,
)
from moorage.store.meta import MetaStore

log = get_logger("registry")

_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
ADMIN_PASSWORD_NAMES = ("password", "password2")
TOKEN_PASSWORD_NAMES = ("password1", "password2")

# Built-in scope maps every registry has (ACR's system-defined maps).
BUILTIN_SCOPE_MAPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "_repositories_admin": (
        "Can perform all read, write and delete operations on the registry",
        (
            "repositories/*/metadata/read",
            "repositories/*/metadata/write",
            "repositories/*/content/read",
            "repositories/*/content/write",
            "repositories/*/content/delete",
        ),
    ),
    "_repositories_pull": ("Can pull any repository of the registry", ("repositories/*/content/read",)),
    "_repositories_pull_metadata_read": (
        "Can perform all read operations on the registry",
        ("repositories/*/content/read", "repositories/*/metadata/read"),
    ),
    "_repositories_push": (
        "Can push to any repository of the registry",
        ("repositories/*/content/read", "repositories/*/content/write"),
    ),
    "_repositories_push_metadata_write": (
        "Can perform all read and write operations on the registry",
        (
            "repositories/*/metadata/read",
            "repositories/*/metadata/write",
            "repositories/*/content/read",
            "repositories/*/content/write",
        ),
    ),
}
_REGISTRY_BY_NAME = sa.select(t.registries).where(t.registries.c.name == sa.bindparam("in_name"))
_SCOPE_ACTION = re.compile(r"^repositories/[^\s]+/(content/(read|write|delete)|metadata/(read|write))$")


class RegistryNotFound(NotFound):
    default_code = "ResourceNotFound"


def settings_to_json(settings: RegistrySettings) -> dict[str, Any]:
    data = asdict(settings)
    data["sku"] = settings.sku.value
    data["network_rule_set"]["ip_rules"] = list(settings.network_rule_set.ip_rules)
    return data


def settings_from_json(data: dict[str, Any]) -> RegistrySettings:
    rules = data.get("network_rule_set") or {}
    return RegistrySettings(
        sku=Sku(data.get("sku", "Basic")),
        admin_user_enabled=bool(data.get("admin_user_enabled")),
        anonymous_pull_enabled=bool(data.get("anonymous_pull_enabled")),
        public_network_access=str(data.get("public_network_access", "Enabled")),
        network_rule_set=NetworkRuleSet(
            str(rules.get("default_action", "Allow")), tuple(rules.get("ip_rules") or ())
        ),
        network_rule_bypass=str(data.get("network_rule_bypass", "AzureServices")),
    )


def normalize_ip_rule(value: str) -> str:
    """An IPv4 address or CIDR, canonical; ``InvalidArgument`` otherwise."""
    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            if network.version != 4:
                raise ValueError
            return str(network)
        address = ipaddress.ip_address(value)
        if address.version != 4:
            raise ValueError
        return str(address)
    except ValueError as exc:
        raise InvalidArgument(
            f"The IP rule value '{value}' is not a valid IPv4 address or CIDR range.",
            code="InvalidIpRuleValue",
        ) from exc


class Registries:
    def __init__(
        self,
        store: MetaStore,
        content: Content,
        sealer: SecretSealer,
        listeners: Listeners,
        clock: Clock,
        *,
        login_host: str = "127.0.0.1",
    ) -> None:
        self._store = store
        self._content = content
        self._sealer = sealer
        self._listeners = listeners
        self._clock = clock
        self._login_host = login_host
        self._by_port: dict[int, str] = {}
        # Registry records by name, read once: every registry request looks its registry up, and
        # records change only through create/update/delete/start here, which drop the entry.
        # ``_generation`` moves on every change, so a read that raced a change is not cached.
        self._cache: dict[str, Registry] = {}
        self._generation = 0

    # -- lookup ---------------------------------------------------------------------------------

    def _record(self, row: Any) -> Registry:
        return Registry(
            name=row.name,
            display_name=row.display_name,
            resource_id=row.resource_id,
            tenant_id=row.tenant_id,
            login_server=f"{row.login_host}:{row.port}",
            port=row.port,
            settings=settings_from_json(row.settings),
            created_at=row.created_at,
        )

    def _forget(self, name: str) -> None:
        self._generation += 1
        self._cache.pop(name.lower(), None)

    async def get(self, name: str) -> Registry | None:
        key = name.lower()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        generation = self._generation
        row = await self._store.read(lambda conn: conn.execute(_REGISTRY_BY_NAME, {"in_name": key}).first())
        if row is None:
            return None
        registry = self._record(row)
        if generation == self._generation:
            self._cache[key] = registry
        return registry

    async def require(self, name: str) -> Registry:
        registry = await self.get(name)
        if registry is None:
            raise RegistryNotFound(f"The registry '{name}' was not found.")
        return registry

    async def all(self) -> list[Registry]:
        async with self._store.connect() as conn:
            return [self._record(r) for r in await conn.execute(sa.select(t.registries))]

    async def by_port(self, port: int) -> Registry | None:
        name = self._by_port.get(port)
        return await self.get(name) if name else None

    async def by_login_server(self, host: str) -> Registry | None:
        """Resolve a login server as written in an image reference: ``host:port`` of a local
        registry, or Azure's ``<name>.azurecr.io`` form, which maps to the local registry
        ``<name>`` so templates written for Azure run unmodified."""
        host = host.lower()
        if host.endswith(".azurecr.io"):
            return await self.get(host.removesuffix(".azurecr.io"))
        _, _, port = host.rpartition(":")
        served = self._by_port.get(int(port)) if port.isdigit() else None
        if served is not None:
            registry = await self.get(served)
            if registry is not None and registry.login_server.lower() == host:
                return registry
        for registry in await self.all():
            if registry.login_server.lower() == host:
                return registry
        return None

    def local_login_server(self, host: str) -> str | None:
        """Synchronously map a host from an image reference to a local login server: an exact
        ``host:port`` of ours, or Azure's ``<name>.azurecr.io`` form of a registry of ours."""
        host = host.lower()
        served = {f"{self._login_host}:{port}": name for port, name in self._by_port.items()}
        if host in served:
            return host
        if host.endswith(".azurecr.io"):
            name = host.removesuffix(".azurecr.io")
            for login, registry in served.items():
                if registry == name:
                    return login
        return None

    async def name_available(self, name: str) -> tuple[bool, str | None, str | None]:
        """ACR's checkNameAvailability: (available, reason, message)."""
        if not _NAME.match(name):
            return (
                False,
                "Invalid",
                "The specified resource name is disallowed. Registry names may contain only "
                "alpha numeric characters and must be between 5 and 50 characters.",
            )
        if await self.get(name) is not None:
            return False, "AlreadyExists", f"The registry {name} is already in use."
        return True, None, None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every registry's login server (at start-up). A port taken by something else is
        replaced by a free one, and the login server follows."""
        for registry in await self.all():
            try:
                port = await self._listeners.listen(registry.port)
            except OSError:
                port = await self._listeners.listen(0)
                log.warning("registry port taken; moved", registry=registry.name, old=registry.port, new=port)
                async with self._store.begin() as conn:
                    await conn.execute(
                        t.registries.update().where(t.registries.c.name == registry.name).values(port=port)
                    )
                self._forget(registry.name)
            self._by_port[port] = registry.name

    async def create(
        self, *, name: str, resource_id: str, tenant_id: str, settings: RegistrySettings
    ) -> Registry:
        available, reason, message = await self.name_available(name)
        if not available:
            error = AlreadyExists if reason == "AlreadyExists" else InvalidArgument
            raise error(
                message or "", code="AlreadyInUse" if reason == "AlreadyExists" else "InvalidResourceName"
            )
        port = await self._listeners.listen(0)
        try:
            async with self._store.begin() as conn:
                await conn.execute(
                    t.registries.insert().values(
                        name=name.lower(),
                        display_name=name,
                        resource_id=resource_id,
                        tenant_id=tenant_id,
                        port=port,
                        login_host=self._login_host,
                        settings=settings_to_json(settings),
                        created_at=self._clock.now(),
                    )
                )
                for map_name, (description, actions) in BUILTIN_SCOPE_MAPS.items():
                    await conn.execute(
                        t.scope_maps.insert().values(
                            registry=name.lower(),
                            name=map_name,
                            actions=list(actions),
                            description=description,
                            builtin=True,
                            created_at=self._clock.now(),
                        )
                    )
        except Exception:
            await self._listeners.close(port)
            raise
        finally:
            self._forget(name)
        self._by_port[port] = name.lower()
        if settings.admin_user_enabled:
            await self.admin_credentials(name)
        return await self.require(name)

    async def update(self, name: str, settings: RegistrySettings) -> Registry:
        registry = await self.require(name)
        try:
            async with self._store.begin() as conn:
                await conn.execute(
                    t.registries.update()
                    .where(t.registries.c.name == registry.name)
                    .values(settings=settings_to_json(settings))
                )
        finally:
            self._forget(registry.name)
        if settings.admin_user_enabled:
            await self.admin_credentials(name)
        return await self.require(name)

    async def delete(self, name: str) -> None:
        registry = await self.get(name)
        if registry is None:
            return
        await self._content.delete_registry_content(registry.name)
        try:
            async with self._store.begin() as conn:
                for table in (t.tokens, t.scope_maps, t.admin_passwords):
                    await conn.execute(table.delete().where(table.c.registry == registry.name))
                await conn.execute(t.registries.delete().where(t.registries.c.name == registry.name))
        finally:
            self._forget(registry.name)
        self._by_port.pop(registry.port, None)
        await self._listeners.close(registry.port)

    # -- admin user -----------------------------------------------------------------------------

    async def admin_credentials(self, name: str) -> dict[str, str]:
        """The admin user's two passwords (created on first use). Username = registry name."""
        registry = await self.require(name)
        async with self._store.begin() as conn:
            rows = {
                r.name: r.sealed
                for r in await conn.execute(
                    sa.select(t.admin_passwords).where(t.admin_passwords.c.registry == registry.name)
                )
            }
            for which in ADMIN_PASSWORD_NAMES:
                if which not in rows:
                    sealed = self._sealer.seal(_admin_password())
                    await conn.execute(
                        t.admin_passwords.insert().values(registry=registry.name, name=which, sealed=sealed)
                    )
                    rows[which] = sealed
        return {which: self._sealer.unseal(rows[which]) for which in ADMIN_PASSWORD_NAMES}

    async def regenerate_admin_password(self, name: str, which: str) -> dict[str, str]:
        if which not in ADMIN_PASSWORD_NAMES:
            raise InvalidArgument(
                f"The password name '{which}' is invalid; use 'password' or 'password2'.",
                code="InvalidPasswordName",
            )
        registry = await self.require(name)
        await self.admin_credentials(name)
        async with self._store.begin() as conn:
            await conn.execute(
                t.admin_passwords.update()
                .where(t.admin_passwords.c.registry == registry.name, t.admin_passwords.c.name == which)
                .values(sealed=self._sealer.seal(_admin_password()))
            )
        return await self.admin_credentials(name)

    async def check_admin(self, registry: Registry, username: str, password: str) -> bool:
        if not registry.settings.admin_user_enabled or username.lower() != registry.name:
            return False
        current = await self.admin_credentials(registry.name)
        return any(secrets.compare_digest(password, p) for p in current.values())

    # -- scope maps -----------------------------------------------------------------------------

    async def scope_map(self, registry: str, name: str) -> ScopeMap | None:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.scope_maps).where(
                        t.scope_maps.c.registry == registry, t.scope_maps.c.name == name
                    )
                )
            ).first()
        return _scope_map(row) if row else None

    async def scope_maps(self, registry: str) -> list[ScopeMap]:
        async with self._store.connect() as conn:
            rows = await conn.execute(
                sa.select(t.scope_maps)
                .where(t.scope_maps.c.registry == registry)
                .order_by(t.scope_maps.c.name)
            )
            return [_scope_map(r) for r in rows]

    async def put_scope_map(
        self, registry: str, name: str, actions: list[str], description: str | None
    ) -> tuple[ScopeMap, bool]:
        for action in actions:
            if not _SCOPE_ACTION.match(action):
                raise InvalidArgument(
                    f"The scope map action '{action}' is invalid. Actions look like "
                    "'repositories/<repository>/content/read' (content/read|write|delete, "
                    "metadata/read|write).",
                    code="InvalidScopeMapAction",
                )
        if not actions:
            raise InvalidArgument("A scope map needs at least one action.", code="InvalidScopeMapAction")
        existing = await self.scope_map(registry, name)
        if existing and existing.builtin:
            raise InvalidArgument(
                f"The system scope map '{name}' cannot be changed.", code="ScopeMapReadOnly"
            )
        async with self._store.begin() as conn:
            if existing:
                await conn.execute(
                    t.scope_maps.update()
                    .where(t.scope_maps.c.registry == registry, t.scope_maps.c.name == name)
                    .values(actions=actions, description=description)
                )
            else:
                await conn.execute(
                    t.scope_maps.insert().values(
                        registry=registry,
                        name=name,
                        actions=actions,
                        description=description,
                        builtin=False,
                        created_at=self._clock.now(),
                    )
                )
        stored = await self.scope_map(registry, name)
        if stored is None:  # pragma: no cover - written just above
            raise RuntimeError("scope map vanished")
        return stored, existing is None

    async def delete_scope_map(self, registry: str, name: str) -> bool:
        existing = await self.scope_map(registry, name)
        if existing is None:
            return False
        if existing.builtin:
            raise InvalidArgument(
                f"The system scope map '{name}' cannot be deleted.", code="ScopeMapReadOnly"
            )
        async with self._store.connect() as conn:
            used = (
                await conn.execute(
                    sa.select(t.tokens.c.name).where(
                        t.tokens.c.registry == registry, t.tokens.c.scope_map == name
                    )
                )
            ).first()
        if used is not None:
            raise InvalidArgument(
                f"The scope map '{name}' is used by token '{used.name}'.", code="ScopeMapInUse"
            )
        async with self._store.begin() as conn:
            await conn.execute(
                t.scope_maps.delete().where(t.scope_maps.c.registry == registry, t.scope_maps.c.name == name)
            )
        return True

    # -- repository-scoped tokens ---------------------------------------------------------------

    async def token(self, registry: str, name: str) -> RepositoryToken | None:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.tokens).where(t.tokens.c.registry == registry, t.tokens.c.name == name)
                )
            ).first()
        return _token(row) if row else None

    async def tokens(self, registry: str) -> list[RepositoryToken]:
        async with self._store.connect() as conn:
            rows = await conn.execute(
                sa.select(t.tokens).where(t.tokens.c.registry == registry).order_by(t.tokens.c.name)
            )
            return [_token(r) for r in rows]

    async def put_token(
        self, registry: str, name: str, scope_map: str, enabled: bool
    ) -> tuple[RepositoryToken, bool]:
        if await self.scope_map(registry, scope_map) is None:
            raise InvalidArgument(f"The scope map '{scope_map}' does not exist.", code="ScopeMapNotFound")
        existing = await self.token(registry, name)
        async with self._store.begin() as conn:
            if existing:
                await conn.execute(
                    t.tokens.update()
                    .where(t.tokens.c.registry == registry, t.tokens.c.name == name)
                    .values(scope_map=scope_map, enabled=enabled)
                )
            else:
                await conn.execute(
                    t.tokens.insert().values(
                        registry=registry,
                        name=name,
                        scope_map=scope_map,
                        enabled=enabled,
                        passwords=[],
                        created_at=self._clock.now(),
                    )
                )
        stored = await self.token(registry, name)
        if stored is None:  # pragma: no cover - written just above
            raise RuntimeError("token vanished")
        return stored, existing is None

    async def delete_token(self, registry: str, name: str) -> bool:
        async with self._store.begin() as conn:
            result = await conn.execute(
                t.tokens.delete().where(t.tokens.c.registry == registry, t.tokens.c.name == name)
            )
        return bool(result.rowcount)

    async def generate_token_password(
        self, registry: str, name: str, which: str | None, expiry: datetime | None
    ) -> tuple[RepositoryToken, list[tuple[str, str, datetime | None]]]:
        """New password(s) for a token; returns the token and the plaintexts, shown only now."""
        token = await self.token(registry, name)
        if token is None:
            raise NotFound(f"The token '{name}' does not exist.", code="TokenNotFound")
        names = [which] if which else list(TOKEN_PASSWORD_NAMES)
        for n in names:
            if n not in TOKEN_PASSWORD_NAMES:
                raise InvalidArgument(
                    f"The password name '{n}' is invalid; use 'password1' or 'password2'.",
                    code="InvalidPasswordName",
                )
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.tokens.c.passwords).where(
                        t.tokens.c.registry == registry, t.tokens.c.name == name
                    )
                )
            ).first()
        stored = {p["name"]: p for p in (row.passwords if row else [])}
        issued: list[tuple[str, str, datetime | None]] = []
        now = self._clock.now()
        for n in names:
            value = passwords.generate_secret()
            stored[n] = {
                "name": n,
                "hash": passwords.hash_secret(value),
                "created_at": now.isoformat(),
                "expires_at": expiry.isoformat() if expiry else None,
            }
            issued.append((n, value, expiry))
        async with self._store.begin() as conn:
            await conn.execute(
                t.tokens.update()
                .where(t.tokens.c.registry == registry, t.tokens.c.name == name)
                .values(passwords=sorted(stored.values(), key=lambda p: p["name"]))
            )
        refreshed = await self.token(registry, name)
        if refreshed is None:  # pragma: no cover
            raise RuntimeError("token vanished")
        return refreshed, issued

    async def check_token(self, registry: Registry, username: str, password: str) -> RepositoryToken | None:
        """The enabled token whose name and (unexpired) password these are, or ``None``."""
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.tokens).where(
                        t.tokens.c.registry == registry.name, t.tokens.c.name == username
                    )
                )
            ).first()
        if row is None or not row.enabled:
            return None
        now = self._clock.now()
        for entry in row.passwords:
            expires = entry.get("expires_at")
            if expires and datetime.fromisoformat(expires) <= now:
                continue
            if passwords.verify_secret(password, entry["hash"]):
                return _token(row)
        return None


def _admin_password() -> str:
    # ACR admin passwords are 52 characters of base64-like text.
    return secrets.token_urlsafe(39)[:52]


def _scope_map(row: Any) -> ScopeMap:
    return ScopeMap(
        row.registry, row.name, tuple(row.actions), row.description, bool(row.builtin), row.created_at
    )


def _token(row: Any) -> RepositoryToken:
    return RepositoryToken(
        registry=row.registry,
        name=row.name,
        scope_map=row.scope_map,
        enabled=bool(row.enabled),
        passwords=tuple(
            TokenPassword(
                p["name"],
                datetime.fromisoformat(p["created_at"]),
                datetime.fromisoformat(p["expires_at"]) if p.get("expires_at") else None,
            )
            for p in row.passwords
        ),
        created_at=row.created_at,
    )
