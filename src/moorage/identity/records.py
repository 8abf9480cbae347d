"""Identity records: plain, immutable values handed across the package boundary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class PrincipalKind(StrEnum):
    """What kind of non-human principal this is (Entra's ``servicePrincipalType``)."""

    APPLICATION = "Application"
    MANAGED_IDENTITY = "ManagedIdentity"


# Directory roles moorage understands. The bootstrap principal holds APPLICATION_ADMINISTRATOR,
# which is what creating and managing service principals requires (as in Entra).
APPLICATION_ADMINISTRATOR = "Application Administrator"
# Creating tenants requires GLOBAL_ADMINISTRATOR (held by the bootstrap principal).
GLOBAL_ADMINISTRATOR = "Global Administrator"


@dataclass(frozen=True)
class Tenant:
    id: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class Principal:
    """A service principal (object id ``object_id``) and its application/client id ``app_id``.

    Managed identities are principals too; ``resource_id`` is then the ARM id of the identity
    resource (the ``xms_mirid`` claim of their tokens).
    """

    object_id: str
    app_id: str
    tenant_id: str
    kind: PrincipalKind
    display_name: str
    created_at: datetime
    resource_id: str | None = None
    directory_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretInfo:
    """Metadata of one client secret. The secret itself is never stored, only a salted hash."""

    key_id: str
    hint: str
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly created secret: the one moment its value exists outside the caller's hands."""

    principal: Principal
    info: SecretInfo
    value: str


@dataclass(frozen=True)
class RoleDefinition:
    id: str  # GUID
    role_name: str
    description: str
    role_type: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleAssignment:
    """A role assignment. ``scope`` keeps the caller's casing; comparisons are case-insensitive."""

    name: str  # GUID
    scope: str
    role_definition_id: str  # GUID of the role definition
    principal_id: str
    principal_type: str
    tenant_id: str
    created_on: datetime
    updated_on: datetime
    created_by: str | None = None
    description: str | None = None
    condition: str | None = None
    condition_version: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{self.name}"


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims of an access token moorage issued."""

    tenant_id: str
    object_id: str
    app_id: str
    audience: str
    issuer: str
    expires_at: int
    kind: PrincipalKind
    resource_id: str | None
    raw: dict[str, object]
