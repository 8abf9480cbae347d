"""Registry records: the data plane's view of registries, repositories, tokens and scope maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Sku(StrEnum):
    BASIC = "Basic"
    STANDARD = "Standard"
    PREMIUM = "Premium"


BYPASS_AZURE_SERVICES = "AzureServices"
BYPASS_NONE = "None"


@dataclass(frozen=True)
class NetworkRuleSet:
    """``defaultAction`` and IPv4 ``ipRules`` (addresses or CIDRs; action is always Allow)."""

    default_action: str = "Allow"
    ip_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistrySettings:
    """What the management plane configures; the data plane enforces it."""

    sku: Sku = Sku.BASIC
    admin_user_enabled: bool = False
    anonymous_pull_enabled: bool = False
    public_network_access: str = "Enabled"
    network_rule_set: NetworkRuleSet = field(default_factory=NetworkRuleSet)
    network_rule_bypass: str = BYPASS_AZURE_SERVICES


@dataclass(frozen=True)
class Registry:
    name: str  # lower-case, as in the login server
    display_name: str  # the ARM resource name as created
    resource_id: str
    tenant_id: str
    login_server: str  # host:port clients use
    port: int
    settings: RegistrySettings
    created_at: datetime


@dataclass(frozen=True)
class ScopeMap:
    registry: str
    name: str
    actions: tuple[str, ...]
    description: str | None
    builtin: bool
    created_at: datetime


@dataclass(frozen=True)
class TokenPassword:
    name: str  # password1 | password2
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class RepositoryToken:
    """A scope-map token (username = token name)."""

    registry: str
    name: str
    scope_map: str
    enabled: bool
    passwords: tuple[TokenPassword, ...]
    created_at: datetime


@dataclass(frozen=True)
class ManifestInfo:
    repository: str
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    subject: str | None
    config_media_type: str | None
    annotations: dict[str, str] | None
    created_at: datetime
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepositoryInfo:
    name: str
    created_at: datetime
    updated_at: datetime
    manifest_count: int
    tag_count: int


@dataclass(frozen=True)
class TagInfo:
    name: str
    digest: str
    created_at: datetime
    updated_at: datetime
