"""A validated container group definition: what ``Microsoft.ContainerInstance/containerGroups``
asks for, after :func:`moorage.instances.validation.parse_group` has checked it.

Plain, immutable data with no I/O. Enum-like fields hold Azure's canonical spelling (``Public``,
``TCP``, ``OnFailure``...) whatever casing the client sent; ARM ids keep the casing the client
used. Read-only fields of the ARM body (``provisioningState``, ``instanceView``, ``fqdn``,
``principalId``...) are not part of a definition. Fields that hold secrets (registry passwords,
secure environment values, secret volume contents, storage keys) are left out of ``repr`` so a
logged definition cannot leak them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

RestartPolicy = Literal["Always", "OnFailure", "Never"]
PortProtocol = Literal["TCP", "UDP"]
IpAddressType = Literal["Public", "Private"]
VolumeKind = Literal["emptyDir", "secret", "gitRepo", "azureFile"]
ProbeScheme = Literal["http", "https"]

IDENTITY_SYSTEM = "SystemAssigned"
IDENTITY_USER = "UserAssigned"
IDENTITY_BOTH = "SystemAssigned, UserAssigned"
IDENTITY_NONE = "None"
IDENTITY_TYPES = (IDENTITY_SYSTEM, IDENTITY_USER, IDENTITY_BOTH, IDENTITY_NONE)

# ACI's probe defaults, the same as Kubernetes' (ACI's probes are Kubernetes probes).
DEFAULT_PROBE_INITIAL_DELAY_SECONDS = 0
DEFAULT_PROBE_PERIOD_SECONDS = 10
DEFAULT_PROBE_FAILURE_THRESHOLD = 3
DEFAULT_PROBE_SUCCESS_THRESHOLD = 1
DEFAULT_PROBE_TIMEOUT_SECONDS = 1


@dataclass(frozen=True)
class GroupIdentity:
    """``identity``: ``type`` is one of :data:`IDENTITY_TYPES`; ``user_assigned`` holds the
    ``Microsoft.ManagedIdentity/userAssignedIdentities`` ARM ids in the client's casing."""

    type: str
    user_assigned: tuple[str, ...] = ()

    @property
    def system_assigned(self) -> bool:
        return self.type in (IDENTITY_SYSTEM, IDENTITY_BOTH)

    def find_user_assigned(self, resource_id: str) -> str | None:
        """The listed id equal to ``resource_id`` (ARM ids compare case-insensitively)."""
        wanted = resource_id.lower()
        return next((uid for uid in self.user_assigned if uid.lower() == wanted), None)


@dataclass(frozen=True)
class RegistryCredentialDefinition:
    """One ``imageRegistryCredentials`` entry: either ``username``/``password`` or ``identity``
    (a user-assigned identity id that is also in the group's ``identity``)."""

    server: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity: str | None = None
    identity_url: str | None = None


@dataclass(frozen=True)
class PortDefinition:
    port: int
    protocol: PortProtocol = "TCP"


@dataclass(frozen=True)
class EnvVar:
    """An environment variable; at most one of ``value`` and ``secure_value`` is set."""

    name: str
    value: str | None = None
    secure_value: str | None = field(default=None, repr=False)

    @property
    def is_secure(self) -> bool:
        return self.secure_value is not None

    @property
    def effective_value(self) -> str:
        """What the process sees."""
        if self.secure_value is not None:
            return self.secure_value
        return self.value or ""


@dataclass(frozen=True)
class GpuDefinition:
    count: int
    sku: str


@dataclass(frozen=True)
class ResourceRequestsDefinition:
    cpu: float
    memory_in_gb: float
    gpu: GpuDefinition | None = None


@dataclass(frozen=True)
class ResourceLimitsDefinition:
    cpu: float | None = None
    memory_in_gb: float | None = None
    gpu: GpuDefinition | None = None


@dataclass(frozen=True)
class ResourcesDefinition:
    """``resources``. ACI enforces a container's *limit* when one is set and its *request*
    otherwise; a limit lies between the container's request and the group's total request."""

    requests: ResourceRequestsDefinition
    limits: ResourceLimitsDefinition | None = None

    @property
    def cpu_limit(self) -> float:
        if self.limits is not None and self.limits.cpu is not None:
            return self.limits.cpu
        return self.requests.cpu

    @property
    def memory_limit_in_gb(self) -> float:
        if self.limits is not None and self.limits.memory_in_gb is not None:
            return self.limits.memory_in_gb
        return self.requests.memory_in_gb


@dataclass(frozen=True)
class VolumeMountDefinition:
    name: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class HttpHeaderDefinition:
    name: str
    value: str = ""


@dataclass(frozen=True)
class HttpGetDefinition:
    port: int
    path: str | None = None
    scheme: ProbeScheme = "http"
    headers: tuple[HttpHeaderDefinition, ...] = ()


@dataclass(frozen=True)
class ProbeDefinition:
    """A liveness or readiness probe: exactly one of ``exec_command`` and ``http_get``."""

    exec_command: tuple[str, ...] | None = None
    http_get: HttpGetDefinition | None = None
    initial_delay_seconds: int = DEFAULT_PROBE_INITIAL_DELAY_SECONDS
    period_seconds: int = DEFAULT_PROBE_PERIOD_SECONDS
    failure_threshold: int = DEFAULT_PROBE_FAILURE_THRESHOLD
    success_threshold: int = DEFAULT_PROBE_SUCCESS_THRESHOLD
    timeout_seconds: int = DEFAULT_PROBE_TIMEOUT_SECONDS


@dataclass(frozen=True)
class SecurityContextDefinition:
    """What this host honours of ``securityContext``: never privileged, no custom seccomp
    profile; capability names are upper case without the ``CAP_`` prefix."""

    allow_privilege_escalation: bool | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    run_as_user: int | None = None
    run_as_group: int | None = None


@dataclass(frozen=True)
class ContainerDefinition:
    name: str
    image: str
    resources: ResourcesDefinition
    command: tuple[str, ...] = ()
    ports: tuple[PortDefinition, ...] = ()
    environment_variables: tuple[EnvVar, ...] = ()
    volume_mounts: tuple[VolumeMountDefinition, ...] = ()
    liveness_probe: ProbeDefinition | None = None
    readiness_probe: ProbeDefinition | None = None
    security_context: SecurityContextDefinition | None = None


@dataclass(frozen=True)
class InitContainerDefinition:
    """An init container: no ports, resources or probes (it runs to completion, in order, before
    the group's containers start)."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    environment_variables: tuple[EnvVar, ...] = ()
    volume_mounts: tuple[VolumeMountDefinition, ...] = ()
    security_context: SecurityContextDefinition | None = None


@dataclass(frozen=True)
class GitRepoDefinition:
    repository: str
    directory: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class AzureFileDefinition:
    share_name: str
    storage_account_name: str
    read_only: bool = False
    storage_account_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VolumeDefinition:
    """One ``volumes`` entry of exactly one ``kind``. ``secret`` maps file names to the decoded
    file contents."""

    name: str
    kind: VolumeKind
    secret: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    git_repo: GitRepoDefinition | None = None
    azure_file: AzureFileDefinition | None = None


@dataclass(frozen=True)
class IpAddressDefinition:
    ports: tuple[PortDefinition, ...]
    type: IpAddressType = "Public"
    dns_name_label: str | None = None
    auto_generated_domain_name_label_scope: str = "Unsecure"


@dataclass(frozen=True)
class DnsConfigDefinition:
    name_servers: tuple[str, ...]
    search_domains: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupDefinition:
    """A whole container group as the client asked for it (its desired state)."""

    name: str
    location: str
    containers: tuple[ContainerDefinition, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    identity: GroupIdentity | None = None
    init_containers: tuple[InitContainerDefinition, ...] = ()
    image_registry_credentials: tuple[RegistryCredentialDefinition, ...] = ()
    restart_policy: RestartPolicy = "Always"
    ip_address: IpAddressDefinition | None = None
    os_type: str = "Linux"
    volumes: tuple[VolumeDefinition, ...] = ()
    dns_config: DnsConfigDefinition | None = None
    sku: str = "Standard"
    priority: str = "Regular"

    @property
    def total_cpu(self) -> float:
        """The group's CPU request: the sum of its containers' requests."""
        return sum(c.resources.requests.cpu for c in self.containers)

    @property
    def total_memory_in_gb(self) -> float:
        return sum(c.resources.requests.memory_in_gb for c in self.containers)

    def volume(self, name: str) -> VolumeDefinition | None:
        return next((v for v in self.volumes if v.name == name), None)

    def credential_for(self, server: str) -> RegistryCredentialDefinition | None:
        """The credential whose ``server`` names ``server`` (host names are case-insensitive)."""
        wanted = server.lower()
        return next((c for c in self.image_registry_credentials if c.server.lower() == wanted), None)
