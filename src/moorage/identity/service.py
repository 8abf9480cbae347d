"""The identity service: directory objects, secrets, tokens and role-based access control.

Transport-neutral: the Entra-compatible HTTP edge (:mod:`moorage.identity.http`) and the ARM
providers call into it. Every method validates its input and raises a
:class:`~moorage.core.errors.MoorageError`; nothing is written when it raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from moorage.core import passwords as credentials
from moorage.core.clock import Clock
from moorage.core.errors import InvalidArgument, NotFound
from moorage.identity import roles
from moorage.identity.errors import (
    OAuthInvalidClient,
    OAuthInvalidResource,
    OAuthUnauthorizedClient,
    PrincipalNotFound,
    RoleAssignmentExists,
    RoleAssignmentNotFound,
    RoleAssignmentUpdateNotPermitted,
    RoleDefinitionNotFound,
    TenantNotFound,
)
from moorage.identity.records import (
    IssuedSecret,
    Principal,
    PrincipalKind,
    RoleAssignment,
    SecretInfo,
    Tenant,
    TokenClaims,
)
from moorage.identity.schema import principals, role_assignments, secrets, tenants
from moorage.identity.tokens import IssuedToken, TokenAuthority
from moorage.store.meta import MetaStore

MANAGEMENT_AUDIENCES = (
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
)
REGISTRY_AUDIENCE = "https://containerregistry.azure.net"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
# Resources a token may be requested for (with or without a trailing slash).
KNOWN_RESOURCES = (*MANAGEMENT_AUDIENCES, REGISTRY_AUDIENCE, GRAPH_AUDIENCE)

PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")


def _guid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"The {what} '{value}' is not a valid GUID.") from exc


def _principal(row: Row[Any]) -> Principal:
    return Principal(
        object_id=row.object_id,
        app_id=row.app_id,
        tenant_id=row.tenant_id,
        kind=PrincipalKind(row.kind),
        display_name=row.display_name,
        created_at=row.created_at,
        resource_id=row.resource_id,
        directory_roles=tuple(row.directory_roles or ()),
    )


def _assignment(row: Row[Any]) -> RoleAssignment:
    return RoleAssignment(
        name=row.name,
        scope=row.scope,
        role_definition_id=row.role_definition_id,
        principal_id=row.principal_id,
        principal_type=row.principal_type,
        tenant_id=row.tenant_id,
        created_on=row.created_on,
        updated_on=row.updated_on,
        created_by=row.created_by,
        description=row.description,
        condition=row.condition,
        condition_version=row.condition_version,
    )


def normalize_scope(scope: str) -> str:
    """Scope as stored: leading slash, no trailing slash (the root scope stays ``/``)."""
    return "/" + scope.strip("/")


def resource_for_scope(scope: str) -> str:
    """``https://management.azure.com/.default`` → ``https://management.azure.com``.

    The resource is the scope without the ``/.default`` suffix, so a resource whose identifier
    ends in a slash keeps it when the scope has two: the Azure CLI asks for
    ``https://management.core.windows.net//.default`` and gets ``https://management.core.windows.net/``.
    """
    if scope.endswith("/.default"):
        return scope[: -len("/.default")]
    return scope


class IdentityService:
    def __init__(self, store: MetaStore, authority: TokenAuthority, clock: Clock) -> None:
        self._store = store
        self._authority = authority
        self._clock = clock

    @property
    def authority(self) -> TokenAuthority:
        return self._authority

    # -- tenants --------------------------------------------------------------------------------

    async def create_tenant(self, display_name: str, tenant_id: str | None = None) -> Tenant:
        tenant = Tenant(tenant_id or str(uuid.uuid4()), display_name, self._clock.now())
        async with self._store.begin() as conn:
            await conn.execute(
                tenants.insert().values(
                    id=tenant.id, display_name=tenant.display_name, created_at=tenant.created_at
                )
            )
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant:
        async with self._store.connect() as conn:
            row = (await conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id.lower()))).first()
        if row is None:
            raise TenantNotFound(
                f"AADSTS90002: Tenant '{tenant_id}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud.",
                code="invalid_request",
            )
        return Tenant(row.id, row.display_name, row.created_at)

    async def list_tenants(self) -> list[Tenant]:
        async with self._store.connect() as conn:
            rows = await conn.execute(sa.select(tenants).order_by(tenants.c.created_at))
            return [Tenant(r.id, r.display_name, r.created_at) for r in rows]

    # -- principals -----------------------------------------------------------------------------

    async def create_application(
        self,
        tenant_id: str,
        display_name: str,
        *,
        directory_roles: Sequence[str] = (),
        secret_lifetime: timedelta | None = timedelta(days=365),
    ) -> IssuedSecret:
        """Create an application's service principal and its first client secret."""
        await self.get_tenant(tenant_id)
        if not display_name or len(display_name) > 120:
            raise InvalidArgument("displayName must be 1-120 characters.", target="displayName")
        now = self._clock.now()
        principal = Principal(
            object_id=str(uuid.uuid4()),
            app_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            kind=PrincipalKind.APPLICATION,
            display_name=display_name,
            created_at=now,
            directory_roles=tuple(directory_roles),
        )
        value = credentials.generate_secret()
        info = SecretInfo(
            str(uuid.uuid4()),
            credentials.hint(value),
            now,
            now + secret_lifetime if secret_lifetime else None,
        )
        async with self._store.begin() as conn:
            await conn.execute(
                principals.insert().values(
                    object_id=principal.object_id,
                    app_id=principal.app_id,
                    tenant_id=tenant_id,
                    kind=principal.kind.value,
                    display_name=display_name,
                    resource_key=None,
                    resource_id=None,
                    directory_roles=list(directory_roles),
                    created_at=now,
                )
            )
            await conn.execute(self._secret_insert(principal.object_id, value, info))
        return IssuedSecret(principal, info, value)

    @staticmethod
    def _secret_insert(object_id: str, value: str, info: SecretInfo) -> sa.Insert:
        return secrets.insert().values(
            key_id=info.key_id,
            object_id=object_id,
            secret_hash=credentials.hash_secret(value),
            hint=info.hint,
            created_at=info.created_at,
            expires_at=info.expires_at,
        )

    async def reset_secret(self, tenant_id: str, principal_ref: str, *, append: bool = False) -> IssuedSecret:
        """Issue a new secret; unless ``append``, every older secret stops working."""
        principal = await self.find_principal(tenant_id, principal_ref)
        if principal.kind is not PrincipalKind.APPLICATION:
            raise InvalidArgument("Managed identities have no client secrets.")
        now = self._clock.now()
        value = credentials.generate_secret()
        info = SecretInfo(str(uuid.uuid4()), credentials.hint(value), now, now + timedelta(days=365))
        async with self._store.begin() as conn:
            if not append:
                await conn.execute(secrets.delete().where(secrets.c.object_id == principal.object_id))
            await conn.execute(self._secret_insert(principal.object_id, value, info))
        return IssuedSecret(principal, info, value)

    async def list_secrets(self, object_id: str) -> list[SecretInfo]:
        async with self._store.connect() as conn:
            rows = await conn.execute(
                sa.select(secrets).where(secrets.c.object_id == object_id).order_by(secrets.c.created_at)
            )
            return [SecretInfo(r.key_id, r.hint, r.created_at, r.expires_at) for r in rows]

    async def find_principal(self, tenant_id: str, ref: str) -> Principal:
        """A principal of ``tenant_id`` by object id or app (client) id."""
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(principals).where(
                        principals.c.tenant_id == tenant_id,
                        sa.or_(principals.c.object_id == ref.lower(), principals.c.app_id == ref.lower()),
                    )
                )
            ).first()
        if row is None:
            raise PrincipalNotFound(f"Service principal '{ref}' was not found in tenant '{tenant_id}'.")
        return _principal(row)

    async def principal(self, object_id: str) -> Principal | None:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(sa.select(principals).where(principals.c.object_id == object_id.lower()))
            ).first()
        return _principal(row) if row else None

    async def list_principals(self, tenant_id: str, kind: PrincipalKind | None = None) -> list[Principal]:
        query = sa.select(principals).where(principals.c.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(principals.c.kind == kind.value)
        async with self._store.connect() as conn:
            rows = await conn.execute(query.order_by(principals.c.created_at))
            return [_principal(r) for r in rows]

    async def delete_principal(self, tenant_id: str, ref: str) -> Principal:
        principal = await self.find_principal(tenant_id, ref)
        if principal.kind is PrincipalKind.MANAGED_IDENTITY:
            raise InvalidArgument("Managed identities are deleted by deleting their identity resource.")
        async with self._store.begin() as conn:
            await conn.execute(secrets.delete().where(secrets.c.object_id == principal.object_id))
            await conn.execute(principals.delete().where(principals.c.object_id == principal.object_id))
        return principal

    async def ensure_managed_identity(self, tenant_id: str, resource_id: str, display_name: str) -> Principal:
        """The principal behind a managed identity resource, created on first use (idempotent)."""
        existing = await self.managed_identity(resource_id)
        if existing is not None:
            return existing
        now = self._clock.now()
        principal = Principal(
            object_id=str(uuid.uuid4()),
            app_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            kind=PrincipalKind.MANAGED_IDENTITY,
            display_name=display_name,
            created_at=now,
            resource_id=resource_id,
        )
        async with self._store.begin() as conn:
            await conn.execute(
                principals.insert().values(
                    object_id=principal.object_id,
                    app_id=principal.app_id,
                    tenant_id=tenant_id,
                    kind=principal.kind.value,
                    display_name=display_name,
                    resource_key=resource_id.lower(),
                    resource_id=resource_id,
                    directory_roles=[],
                    created_at=now,
                )
            )
        return principal

    async def managed_identity(self, resource_id: str) -> Principal | None:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(principals).where(principals.c.resource_key == resource_id.lower())
                )
            ).first()
        return _principal(row) if row else None

    async def delete_managed_identity(self, resource_id: str) -> None:
        """Remove the principal of a deleted identity resource. Its role assignments stay, as in
        Azure, where they show up as assignments of an unknown principal."""
        async with self._store.begin() as conn:
            await conn.execute(principals.delete().where(principals.c.resource_key == resource_id.lower()))

    # -- tokens ---------------------------------------------------------------------------------

    async def authenticate_client(self, tenant_id: str, client_id: str, client_secret: str) -> Principal:
        """The application principal whose (unexpired) secret this is.

        Raises OAuth-coded errors with Entra's AADSTS texts: unknown application
        (AADSTS700016) or wrong secret (AADSTS7000215)."""
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(principals).where(
                        principals.c.tenant_id == tenant_id,
                        principals.c.app_id == client_id.lower(),
                        principals.c.kind == PrincipalKind.APPLICATION.value,
                    )
                )
            ).first()
            hashes = []
            if row is not None:
                now = self._clock.now()
                srows = await conn.execute(sa.select(secrets).where(secrets.c.object_id == row.object_id))
                hashes = [s.secret_hash for s in srows if s.expires_at is None or s.expires_at > now]
        if row is None:
            raise OAuthUnauthorizedClient(
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                f"directory '{tenant_id}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant."
            )
        if not any(credentials.verify_secret(client_secret, h) for h in hashes):
            raise OAuthInvalidClient(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                "the request is the client secret value, not the client secret ID, for a secret "
                f"added to app '{client_id}'."
            )
        return _principal(row)

    async def client_credentials(
        self, tenant_id: str, client_id: str, client_secret: str, resource: str
    ) -> IssuedToken:
        """The client-credentials grant. Raises OAuth-coded errors with Entra's AADSTS texts."""
        await self.get_tenant(tenant_id)
        if resource.rstrip("/") not in {r.rstrip("/") for r in KNOWN_RESOURCES}:
            raise OAuthInvalidResource(
                f"AADSTS500011: The resource principal named {resource} was not found in the "
                f"tenant named {tenant_id}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant."
            )
        principal = await self.authenticate_client(tenant_id, client_id, client_secret)
        return self._authority.issue(principal, resource)

    async def token_for_managed_identity(self, resource_id: str, audience: str) -> IssuedToken:
        """Mint a token for a managed identity (the platform's token issuer for container groups)."""
        principal = await self.managed_identity(resource_id)
        if principal is None:
            raise PrincipalNotFound(f"The managed identity '{resource_id}' does not exist.")
        return self._authority.issue(principal, audience)

    def verify(self, token: str, audiences: Collection[str] | None = None) -> TokenClaims:
        return self._authority.verify(token, audiences)

    # -- role-based access control -------------------------------------------------------------

    async def create_role_assignment(
        self,
        *,
        tenant_id: str,
        scope: str,
        name: str,
        role_definition_id: str,
        principal_id: str,
        principal_type: str | None,
        created_by: str | None,
        description: str | None = None,
        condition: str | None = None,
        condition_version: str | None = None,
    ) -> tuple[RoleAssignment, bool]:
        """Create (or confirm) an assignment; returns it and whether it is new.

        Re-putting an identical assignment under the same name is a no-op (200); a different
        body under an existing name is ``RoleAssignmentUpdateNotPermitted``; the same principal,
        role and scope under another name is ``RoleAssignmentExists`` (409).
        """
        name = _guid(name, "role assignment ID")
        role = roles.role_by_id(role_definition_id)
        if role is None:
            raise RoleDefinitionNotFound(
                f"The specified role definition with ID '{role_definition_id.rsplit('/', 1)[-1]}' "
                "does not exist."
            )
        principal_id = _guid(principal_id, "principal ID")
        if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
            raise InvalidArgument(
                f"The principal type '{principal_type}' is not valid. Valid values are: "
                + ", ".join(PRINCIPAL_TYPES)
                + ".",
                code="InvalidPrincipalType",
            )
        principal = await self.principal(principal_id)
        if principal is None or principal.tenant_id != tenant_id:
            raise InvalidArgument(
                f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                f"{tenant_id}. Check that you have the correct principal ID. If you are creating "
                "this principal and then immediately assigning a role, this error might be related "
                "to a replication delay. In this case, set the role assignment principalType "
                "property to a value, such as ServicePrincipal, User, or Group.  See "
                "https://aka.ms/docs-principaltype",
                code="PrincipalNotFound",
            )
        scope = normalize_scope(scope)
        now = self._clock.now()
        async with self._store.begin() as conn:
            existing = (
                await conn.execute(sa.select(role_assignments).where(role_assignments.c.name == name))
            ).first()
            if existing is not None:
                same = (
                    existing.scope_key == scope.lower()
                    and existing.role_definition_id == role.id
                    and existing.principal_id == principal_id
                )
                if not same:
                    raise RoleAssignmentUpdateNotPermitted(
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated."
                    )
                return _assignment(existing), False
            duplicate = (
                await conn.execute(
                    sa.select(role_assignments.c.name).where(
                        role_assignments.c.scope_key == scope.lower(),
                        role_assignments.c.role_definition_id == role.id,
                        role_assignments.c.principal_id == principal_id,
                    )
                )
            ).first()
            if duplicate is not None:
                raise RoleAssignmentExists("The role assignment already exists.")
            values = {
                "name": name,
                "scope": scope,
                "scope_key": scope.lower(),
                "role_definition_id": role.id,
                "principal_id": principal_id,
                "principal_type": principal_type or "ServicePrincipal",
                "tenant_id": tenant_id,
                "description": description,
                "condition": condition,
                "condition_version": condition_version,
                "created_by": created_by,
                "created_on": now,
                "updated_on": now,
            }
            await conn.execute(role_assignments.insert().values(**values))
        return RoleAssignment(
            name=name,
            scope=scope,
            role_definition_id=role.id,
            principal_id=principal_id,
            principal_type=str(values["principal_type"]),
            tenant_id=tenant_id,
            created_on=now,
            updated_on=now,
            created_by=created_by,
            description=description,
            condition=condition,
            condition_version=condition_version,
        ), True

    async def get_role_assignment(self, scope: str, name: str) -> RoleAssignment:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(role_assignments).where(
                        role_assignments.c.name == name.lower(),
                        role_assignments.c.scope_key == normalize_scope(scope).lower(),
                    )
                )
            ).first()
        if row is None:
            raise RoleAssignmentNotFound(f"The role assignment '{name}' is not found.")
        return _assignment(row)

    async def delete_role_assignment(self, scope: str, name: str) -> RoleAssignment | None:
        """Delete and return the assignment, or ``None`` when there was none (ARM's 204)."""
        try:
            assignment = await self.get_role_assignment(scope, name)
        except NotFound:
            return None
        async with self._store.begin() as conn:
            await conn.execute(role_assignments.delete().where(role_assignments.c.name == assignment.name))
        return assignment

    async def delete_role_assignments_within(self, scope: str) -> int:
        """Remove assignments at or below ``scope`` (its resource was deleted)."""
        key = normalize_scope(scope).lower()
        async with self._store.begin() as conn:
            result = await conn.execute(
                role_assignments.delete().where(
                    sa.or_(
                        role_assignments.c.scope_key == key,
                        role_assignments.c.scope_key.startswith(key + "/", autoescape=True),
                    )
                )
            )
        return int(result.rowcount or 0)

    async def list_role_assignments(
        self,
        tenant_id: str,
        scope: str,
        *,
        at_scope: bool = False,
        principal_id: str | None = None,
    ) -> list[RoleAssignment]:
        """Assignments that apply at ``scope`` (at or above it) and, unless ``at_scope``, those
        below it — ARM's listing semantics — optionally for one principal."""
        scope = normalize_scope(scope)
        query = sa.select(role_assignments).where(role_assignments.c.tenant_id == tenant_id)
        if principal_id:
            query = query.where(role_assignments.c.principal_id == principal_id.lower())
        async with self._store.connect() as conn:
            rows = [_assignment(r) for r in await conn.execute(query.order_by(role_assignments.c.created_on))]
        return [
            a
            for a in rows
            if roles.scope_contains(a.scope, scope) or (not at_scope and roles.scope_contains(scope, a.scope))
        ]

    async def assignments_of(self, principal_id: str) -> list[RoleAssignment]:
        async with self._store.connect() as conn:
            rows = await conn.execute(
                sa.select(role_assignments).where(role_assignments.c.principal_id == principal_id.lower())
            )
            return [_assignment(r) for r in rows]

    async def is_authorized(self, principal_id: str, action: str, scope: str) -> bool:
        """Whether ``principal_id`` may perform ``action`` on ``scope`` (data-driven RBAC)."""
        return bool(roles.granting_assignments(await self.assignments_of(principal_id), action, scope))
