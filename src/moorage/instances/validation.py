"""Validation of ``Microsoft.ContainerInstance/containerGroups`` request bodies.

:func:`parse_group` turns a PUT body (the 2023-05-01 schema, from any api-version a client sends)
into a :class:`~moorage.instances.model.GroupDefinition`, or raises:

* :class:`~moorage.core.errors.InvalidArgument` with ``InvalidRequestContent`` and a JSON.NET-style
  message when the body does not have the schema's shape (wrong JSON type, a required property
  missing). ``target`` is the JSON path of the offending property.
* :class:`~moorage.core.errors.InvalidArgument` with an ACI code (``InvalidContainerName``,
  ``ResourceLimitsLessThanRequests``, ``InvalidImageRegistryIdentity``...) when the body is well
  formed but breaks one of ACI's rules. Messages that Azure is known to send are reproduced word
  for word (typos included); the others follow their pattern.
* :class:`~moorage.core.errors.NotSupported` with ``UnsupportedFeature`` for a field this host cannot
  honour (Windows, GPUs, Azure Files, virtual networks, log analytics...): such a field is refused
  with a message naming it, never silently dropped.

As in ARM, property names match case-insensitively, read-only properties in the input
(``provisioningState``, ``instanceView``, ``fqdn``, ``principalId``...) are ignored, and so are
properties the schema does not know. Error messages never contain secret values.

:func:`mask_secrets` removes secrets from a stored body before it is returned by GET or LIST.

Where the codes and messages come from: ``InvalidImageRegistryCredentialType``,
``AmbiguousImageResitryCredentialType``, ``InvalidImageRegistryIdentity`` and the
``InvalidRequestContent`` shape are in shared/docs/azure-semantics.md §3.1; ``InvalidOsType``,
``ResourceRequestsNotSpecified``, ``ResourceSomeRequestsNotSpecified``,
``ResourceLimitsLessThanRequests``, ``ContainerLimitGreaterThanContainerGroupTotalRequest``,
``MissingIpAddressPorts`` and the unused-``ipAddress``-ports message are ACI's answers quoted in
public bug reports (docker compose-cli, virtual-kubelet, terraform-provider-azurerm, Azure SDK
for .NET issues); the naming limits are azure-semantics §2. Every other code is ours, named the
way ACI names its codes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from moorage.core.errors import InvalidArgument, NotSupported
from moorage.core.reference import parse_reference
from moorage.instances.access import identity_not_attached_diagnosis
from moorage.instances.model import (
    IDENTITY_BOTH,
    IDENTITY_NONE,
    IDENTITY_SYSTEM,
    IDENTITY_TYPES,
    IDENTITY_USER,
    ContainerDefinition,
    DnsConfigDefinition,
    EnvVar,
    GitRepoDefinition,
    GroupDefinition,
    GroupIdentity,
    HttpGetDefinition,
    HttpHeaderDefinition,
    InitContainerDefinition,
    IpAddressDefinition,
    PortDefinition,
    PortProtocol,
    ProbeDefinition,
    ProbeScheme,
    RegistryCredentialDefinition,
    ResourceLimitsDefinition,
    ResourceRequestsDefinition,
    ResourcesDefinition,
    RestartPolicy,
    SecurityContextDefinition,
    VolumeDefinition,
    VolumeMountDefinition,
)
from moorage.instances.runtime.specs import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    LINUX_CAPABILITIES,
    MAX_SECRET_BYTES,
    SECRET_FILE,
)

__all__ = ["MAX_CONTAINERS", "MAX_GROUP_CPU", "MAX_GROUP_MEMORY_GB", "mask_secrets", "parse_group"]

# The first api-version whose ImageRegistryCredential has `identity` (azure-semantics §1, §3.1).
REGISTRY_IDENTITY_API_VERSION = "2021-07-01"
# ACI's quota: at most 60 containers in one container group (container-instances-quotas).
MAX_CONTAINERS = 60
# ACI's standard Linux container group maximum in most regions is 4 cores and 16 GB in total
# (container-instances-region-availability, "Linux container groups"; azure-semantics §3.1 gives the
# message users see beyond it). Callers may pass the host's own figures to parse_group.
MAX_GROUP_CPU = 4.0
MAX_GROUP_MEMORY_GB = 16.0
# Capabilities a container may add: Docker's defaults (a no-op) and NET_ADMIN, whose reach is the
# group's own network namespace (host ports live in the host's nftables table, out of its sight).
# Anything else would give a container more of the host than this host grants.
ADDABLE_CAPABILITIES = DEFAULT_CAPABILITIES | {"NET_ADMIN"}

UNSUPPORTED = "UnsupportedFeature"
CONTENT = "InvalidRequestContent"

# Naming rules (azure-semantics §2 "Naming limits"; group names: Azure's resource naming rules).
_GROUP_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-]{3,61}[a-zA-Z0-9]")
_DNS_LABEL = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-]{3,61}[a-zA-Z0-9]")
_ENV_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")
_SIMPLE_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_GIT_URL = re.compile(r"(?:https?|git)://[^\s/?#@]+(?:@[^\s/?#]+)?(?:/[^\s]*)?", re.IGNORECASE)
_GIT_REVISION = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./+-]{0,254}")
_API_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UAMI_ID = re.compile(
    r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/"
    r"userassignedidentities/[^/]+",
    re.IGNORECASE,
)
_INT32 = (-(2**31), 2**31 - 1)
_MISSING: Any = object()

# JSON.NET's names for the .NET types it reports in conversion errors.
_STRING = "System.String"
_DOUBLE = "System.Double"
_INT = "System.Int32"
_BOOL = "System.Boolean"
_STRING_LIST = "System.Collections.Generic.IList`1[System.String]"
_STRING_MAP = "System.Collections.Generic.IDictionary`2[System.String,System.String]"

_T = TypeVar("_T")


# -- JSON paths and JSON.NET-style errors -------------------------------------------------------------


def _key(path: str, key: str) -> str:
    """JSON.NET's path of ``key`` inside the object at ``path``."""
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}['{key}']"


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _list_of(item_type: str) -> str:
    return f"System.Collections.Generic.IList`1[{item_type}]"


def _content_error(detail: str, path: str, target: str | None = None) -> InvalidArgument:
    return InvalidArgument(
        f"The request content was invalid and could not be deserialized: '{detail} Path '{path}'.'.",
        code=CONTENT,
        target=target if target is not None else path,
    )


def _shown(value: Any) -> str:
    """A scalar as JSON.NET quotes it in 'Error converting value ...'."""
    if isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, str):
        text = f'"{value}"'
    else:
        text = json.dumps(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _type_error(value: Any, path: str, type_name: str, *, want: str, secret: bool = False) -> InvalidArgument:
    """JSON.NET's message for ``value`` at ``path`` that is not a ``want`` (object/array/scalar)."""
    if isinstance(value, list) and want == "object":
        detail = (
            f"Cannot deserialize the current JSON array (e.g. [1,2,3]) into type '{type_name}' because "
            'the type requires a JSON object (e.g. {"name":"value"}) to deserialize correctly.'
        )
    elif isinstance(value, dict) and want == "array":
        detail = (
            f'Cannot deserialize the current JSON object (e.g. {{"name":"value"}}) into type '
            f"'{type_name}' because the type requires a JSON array (e.g. [1,2,3]) to deserialize correctly."
        )
    elif isinstance(value, dict | list):
        token = "StartObject" if isinstance(value, dict) else "StartArray"
        detail = f"Unexpected token {token} when reading a value of type '{type_name}'."
    elif secret:
        detail = f"Error converting value to type '{type_name}'."
    else:
        detail = f"Error converting value {_shown(value)} to type '{type_name}'."
    return _content_error(detail, path)


def _field(obj: dict[str, Any], key: str) -> Any:
    """``obj[key]``, matched case-insensitively as JSON.NET does; ``_MISSING`` when absent."""
    if key in obj:
        return obj[key]
    lowered = key.lower()
    for name, value in obj.items():
        if name.lower() == lowered:
            return value
    return _MISSING


def _opt(obj: dict[str, Any], key: str) -> Any:
    """An optional property: ``None`` when absent or null."""
    value = _field(obj, key)
    return None if value is _MISSING else value


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    value = _field(obj, key)
    if value is _MISSING:
        raise _content_error(f"Required property '{key}' not found in JSON.", path, _key(path, key))
    if value is None:
        raise _content_error(
            f"Required property '{key}' expects a value but got null.", path, _key(path, key)
        )
    return value


def _as_obj(value: Any, path: str, type_name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(value, path, type_name, want="object")
    return value


def _as_list(value: Any, path: str, type_name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _type_error(value, path, type_name, want="array")
    return value


def _as_str(value: Any, path: str, *, secret: bool = False) -> str:
    # JSON.NET turns numbers and booleans into their text for a string property.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    raise _type_error(value, path, _STRING, want="scalar", secret=secret)


def _as_float(value: Any, path: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _type_error(value, path, _DOUBLE, want="scalar")
    return number


def _as_int(value: Any, path: str) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,12}\s*", value)
    ):
        number = int(value)
    if number is None or not _INT32[0] <= number <= _INT32[1]:
        raise _type_error(value, path, _INT, want="scalar")
    return number


def _as_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _type_error(value, path, _BOOL, want="scalar")


def _opt_str(obj: dict[str, Any], key: str, path: str, *, secret: bool = False) -> str | None:
    value = _opt(obj, key)
    return None if value is None else _as_str(value, _key(path, key), secret=secret)


def _req_str(obj: dict[str, Any], key: str, path: str) -> str:
    return _as_str(_required(obj, key, path), _key(path, key))


def _opt_bool(obj: dict[str, Any], key: str, path: str) -> bool | None:
    value = _opt(obj, key)
    return None if value is None else _as_bool(value, _key(path, key))


def _opt_int(obj: dict[str, Any], key: str, path: str) -> int | None:
    value = _opt(obj, key)
    return None if value is None else _as_int(value, _key(path, key))


def _opt_float(obj: dict[str, Any], key: str, path: str) -> float | None:
    value = _opt(obj, key)
    return None if value is None else _as_float(value, _key(path, key))


def _items(obj: dict[str, Any], key: str, path: str, item_type: str) -> list[tuple[str, dict[str, Any]]]:
    """An optional array of objects as ``(item path, item)`` pairs; ``[]`` when absent or null."""
    value = _opt(obj, key)
    if value is None:
        return []
    list_path = _key(path, key)
    items = _as_list(value, list_path, _list_of(item_type))
    return [
        (_index(list_path, i), _as_obj(item, _index(list_path, i), item_type)) for i, item in enumerate(items)
    ]


def _strings(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = _opt(obj, key)
    if value is None:
        return ()
    list_path = _key(path, key)
    items = _as_list(value, list_path, _STRING_LIST)
    out = []
    for i, item in enumerate(items):
        if item is None:
            raise _type_error(item, _index(list_path, i), _STRING, want="scalar")
        out.append(_as_str(item, _index(list_path, i)))
    return tuple(out)


def _clip(text: str, limit: int = 256) -> str:
    """``text`` shortened for a message: clients may send names of any length."""
    return text if len(text) <= limit else text[:limit] + "..."


def _number(value: float) -> str:
    """A double as .NET prints it: ``3`` for 3.0, ``1.5`` for 1.5."""
    return str(int(value)) if value.is_integer() else repr(value)


def _is_empty(value: Any) -> bool:
    """Null, or an object/array holding nothing but empty values."""
    if value is None:
        return True
    if isinstance(value, dict):
        return all(_is_empty(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_empty(v) for v in value)
    return False


def _canonical(value: str, allowed: Iterable[_T]) -> _T | None:
    """The member of ``allowed`` equal to ``value`` ignoring case, or ``None``."""
    lowered = value.lower()
    return next((option for option in allowed if str(option).lower() == lowered), None)


def _api_at_least(api_version: str, minimum: str) -> bool:
    """Whether ``api_version`` (``YYYY-MM-DD[-preview]``) is ``minimum`` or newer. A version we
    cannot read counts as newest: every api-version a client sends is accepted."""
    match = _API_DATE.match(api_version.strip())
    return match is None or match.group(0) >= minimum


def _normalize_location(location: str) -> str:
    """ARM's canonical location name: ``West US`` → ``westus``."""
    return location.replace(" ", "").lower()


# -- the parser -----------------------------------------------------------------------------------------


class _GroupParser:
    """One parse of one body; holds what every message needs (the group's name)."""

    def __init__(self, name: str, api_version: str, max_cpu: float, max_memory_gb: float) -> None:
        self.group = name
        self.cg = f"container group '{name}'"
        self.api_version = api_version
        self.max_cpu = max_cpu
        self.max_memory_gb = max_memory_gb

    # errors

    def _invalid(self, code: str, message: str, target: str) -> InvalidArgument:
        return InvalidArgument(message, code=code, target=target)

    def _unsupported(self, path: str, why: str) -> NotSupported:
        return NotSupported(
            f"The property '{path}' of {self.cg} is not supported on this host: {why}",
            code=UNSUPPORTED,
            target=path,
        )

    def _reject_unless_empty(self, obj: dict[str, Any], key: str, path: str, why: str) -> None:
        if not _is_empty(_opt(obj, key)):
            raise self._unsupported(_key(path, key), why)

    # the whole body

    def parse(self, body: Any, location_default: str | None) -> GroupDefinition:
        self._check_group_name()
        root = {} if body is None else _as_obj(body, "", "ContainerGroup")
        location = self._location(root, location_default)
        tags = self._tags(_opt(root, "tags"))
        self._reject_unless_empty(
            root, "zones", "", "availability zones do not exist on a single host; leave 'zones' out."
        )
        identity = self._identity(_opt(root, "identity"))
        props = _as_obj(_required(root, "properties", ""), "properties", "ContainerGroupProperties")
        self._unsupported_group_properties(props)
        os_type = self._os_type(props)
        restart_policy = self._restart_policy(props)
        volumes = self._volumes(props)
        volume_names = {v.name for v in volumes}
        containers = self._containers(props, volume_names)
        init_containers = self._init_containers(props, volume_names)
        self._check_unique_names(containers, init_containers)
        self._check_group_resources(containers)
        credentials = self._credentials(props, identity)
        ip_address = self._ip_address(props, containers)
        return GroupDefinition(
            name=self.group,
            location=location,
            tags=tags,
            identity=identity,
            containers=containers,
            init_containers=init_containers,
            image_registry_credentials=credentials,
            restart_policy=restart_policy,
            ip_address=ip_address,
            os_type=os_type,
            volumes=volumes,
            dns_config=self._dns_config(props),
            sku=self._sku(props),
            priority=self._priority(props),
        )

    def _check_group_name(self) -> None:
        # Azure's naming rules for containerGroups: 1-63 lower-case letters, digits and '-', not
        # first or last, no '--'.
        if not _GROUP_NAME.fullmatch(self.group) or "--" in self.group:
            raise self._invalid(
                "InvalidContainerGroupName",
                f"The container group name '{self.group}' is invalid. A container group name must contain "
                "no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' "
                "(e.g. 'my-name'); consecutive hyphens are not allowed.",
                "name",
            )

    def _location(self, root: dict[str, Any], default: str | None) -> str:
        raw = _opt(root, "location")
        location = _as_str(raw, "location") if raw is not None else default
        if location is None or not location.strip():
            raise self._invalid(
                "LocationRequired", "The location property is required for this definition.", "location"
            )
        return _normalize_location(location)

    def _tags(self, raw: Any) -> dict[str, str]:
        # ARM's tag rules, as arm.resources.base.parse_tags applies them to every resource type.
        if raw is None:
            return {}
        tags = _as_obj(raw, "tags", _STRING_MAP)
        out: dict[str, str] = {}
        for name, value in tags.items():
            if value is None or isinstance(value, dict | list):
                raise _type_error(value, _key("tags", name), _STRING, want="scalar")
            out[name] = _as_str(value, _key("tags", name))
        if len(out) > 50:
            raise self._invalid(
                "InvalidTagCount", "The tags count exceeds the limit of 50 tags per resource.", "tags"
            )
        for name, value in out.items():
            if not name or len(name) > 512 or re.search(r"[<>%&\\?/]", name):
                raise self._invalid(
                    "InvalidTagNameCharacters",
                    f"The tag name '{_clip(name)}' has invalid characters or is too long (512 at most).",
                    "tags",
                )
            if len(value) > 256:
                raise self._invalid(
                    "InvalidTagValueLength",
                    f"The value of tag '{_clip(name)}' is too long; 256 characters at most.",
                    "tags",
                )
        return out

    # identity

    def _identity(self, raw: Any) -> GroupIdentity | None:
        if raw is None:
            return None
        obj = _as_obj(raw, "identity", "ContainerGroupIdentity")
        uai_path = "identity.userAssignedIdentities"
        uai_raw = _opt(obj, "userAssignedIdentities")
        uai = (
            {}
            if uai_raw is None
            else _as_obj(
                uai_raw,
                uai_path,
                "System.Collections.Generic.IDictionary`2[System.String,UserAssignedIdentities]",
            )
        )
        seen: set[str] = set()
        for key, value in uai.items():
            if value is not None:
                _as_obj(value, _key(uai_path, key), "UserAssignedIdentities")
            self._check_uami_id(key, uai_path)
            if key.lower() in seen:
                raise self._invalid(
                    "InvalidUserAssignedIdentity",
                    f"The user assigned identity '{_clip(key)}' is listed more than once in the identity of "
                    f"{self.cg}.",
                    uai_path,
                )
            seen.add(key.lower())
        type_raw = _opt(obj, "type")
        if type_raw is None:
            if uai:
                raise self._invalid(
                    "InvalidIdentity",
                    f"The identity of {self.cg} lists user assigned identities but has no "
                    f"'type'. Set 'type' to '{IDENTITY_USER}' or '{IDENTITY_BOTH}'.",
                    "identity.type",
                )
            return None
        type_text = _as_str(type_raw, "identity.type")
        identity_type = _canonical(re.sub(r"\s*,\s*", ", ", type_text.strip()), IDENTITY_TYPES)
        if identity_type is None:
            raise _type_error(type_text, "identity.type", "ResourceIdentityType", want="scalar")
        if identity_type in (IDENTITY_USER, IDENTITY_BOTH) and not uai:
            raise self._invalid(
                "InvalidIdentity",
                f"The identity type '{identity_type}' of {self.cg} requires at least one "
                "user assigned identity in 'userAssignedIdentities'.",
                uai_path,
            )
        if identity_type in (IDENTITY_SYSTEM, IDENTITY_NONE) and uai:
            raise self._invalid(
                "InvalidIdentity",
                f"The identity type '{identity_type}' of {self.cg} cannot have user "
                f"assigned identities. Use '{IDENTITY_USER}' or '{IDENTITY_BOTH}'.",
                uai_path,
            )
        return GroupIdentity(identity_type, tuple(uai))

    def _check_uami_id(self, resource_id: str, path: str) -> None:
        lowered = resource_id.lower()
        if not lowered.startswith("/subscriptions/") or "/providers/" not in lowered:
            # ARM's own check of resource ids in request bodies.
            raise self._invalid(
                "LinkedInvalidPropertyId",
                f"Property id '{_clip(resource_id)}' at path '{path}' is invalid. Expect fully qualified "
                "resource Id that start with '/subscriptions/{subscriptionId}' or "
                "'/providers/{resourceProviderNamespace}/'.",
                path,
            )
        if not _UAMI_ID.fullmatch(resource_id):
            raise self._invalid(
                "InvalidUserAssignedIdentity",
                f"The user assigned identity '{_clip(resource_id)}' of {self.cg} is invalid. "
                "The keys of 'userAssignedIdentities' must be resource ids of the form '/subscriptions/"
                "{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/{identityName}'.",
                path,
            )

    # group properties

    def _unsupported_group_properties(self, props: dict[str, Any]) -> None:
        path = "properties"
        no_vnet = (
            "this host has no Azure virtual networks; container groups get a public IP address on the "
            "host's own network."
        )
        self._reject_unless_empty(props, "subnetIds", path, no_vnet)
        self._reject_unless_empty(props, "networkProfile", path, no_vnet)
        self._reject_unless_empty(
            props,
            "encryptionProperties",
            path,
            "customer-managed keys in Key Vault are not available here; leave 'encryptionProperties' out.",
        )
        self._reject_unless_empty(
            props,
            "extensions",
            path,
            "virtual kubelet extensions (kube-proxy, realtime metrics) do not run here.",
        )
        self._reject_unless_empty(
            props,
            "confidentialComputeProperties",
            path,
            "confidential containers need AMD SEV-SNP hardware and are not available here.",
        )
        diagnostics = _opt(props, "diagnostics")
        if diagnostics is not None:
            diag = _as_obj(diagnostics, "properties.diagnostics", "ContainerGroupDiagnostics")
            self._reject_unless_empty(
                diag,
                "logAnalytics",
                "properties.diagnostics",
                "there is no Log Analytics workspace to send logs to; read logs with the container logs API.",
            )
        for key in ("containerGroupProfile", "standbyPoolProfile", "secretReferences", "identityAcls"):
            self._reject_unless_empty(
                props, key, path, "this property of a newer api-version is not implemented by this server."
            )

    def _os_type(self, props: dict[str, Any]) -> str:
        # An absent osType gets InvalidOsType from ACI (az container create without --os-type).
        raw = _opt(props, "osType")
        text = None if raw is None else _as_str(raw, "properties.osType")
        os_type = None if text is None else _canonical(text, ("Windows", "Linux"))
        if os_type is None:
            raise self._invalid(
                "InvalidOsType",
                f"The 'osType' for {self.cg} is invalid. The value must be one of 'Windows,Linux'.",
                "properties.osType",
            )
        if os_type == "Windows":
            raise self._unsupported(
                "properties.osType", "Windows containers cannot run on this Linux host; use 'Linux'."
            )
        return os_type

    def _restart_policy(self, props: dict[str, Any]) -> RestartPolicy:
        raw = _opt(props, "restartPolicy")
        if raw is None:
            return "Always"
        text = _as_str(raw, "properties.restartPolicy")
        policies: tuple[RestartPolicy, ...] = ("Always", "OnFailure", "Never")
        policy = _canonical(text, policies)
        if policy is None:
            raise self._invalid(
                "InvalidRestartPolicy",
                f"The 'restartPolicy' for {self.cg} is invalid. The value must be one of "
                "'Always,OnFailure,Never'.",
                "properties.restartPolicy",
            )
        return policy

    def _sku(self, props: dict[str, Any]) -> str:
        raw = _opt(props, "sku")
        if raw is None:
            return "Standard"
        sku = _canonical(_as_str(raw, "properties.sku"), ("Standard", "Dedicated", "Confidential"))
        if sku is None:
            raise self._invalid(
                "InvalidSku",
                f"The 'sku' for {self.cg} is invalid. The value must be one of "
                "'Standard,Dedicated,Confidential'.",
                "properties.sku",
            )
        if sku == "Dedicated":
            raise self._unsupported("properties.sku", "dedicated hosts are not available; use 'Standard'.")
        if sku == "Confidential":
            raise self._unsupported(
                "properties.sku", "confidential containers need AMD SEV-SNP hardware; use 'Standard'."
            )
        return sku

    def _priority(self, props: dict[str, Any]) -> str:
        raw = _opt(props, "priority")
        if raw is None:
            return "Regular"
        priority = _canonical(_as_str(raw, "properties.priority"), ("Regular", "Spot"))
        if priority is None:
            raise self._invalid(
                "InvalidPriority",
                f"The 'priority' for {self.cg} is invalid. The value must be one of 'Regular,Spot'.",
                "properties.priority",
            )
        if priority == "Spot":
            raise self._unsupported(
                "properties.priority", "there is no spare capacity to evict Spot groups from; use 'Regular'."
            )
        return priority

    # volumes

    def _volumes(self, props: dict[str, Any]) -> tuple[VolumeDefinition, ...]:
        volumes: list[VolumeDefinition] = []
        for path, obj in _items(props, "volumes", "properties", "Volume"):
            name = _req_str(obj, "name", path)
            if not _VOLUME_NAME.fullmatch(name):
                raise self._invalid(
                    "InvalidVolumeName",
                    f"The volume name '{_clip(name)}' in {self.cg} is invalid. A volume name must "
                    "be 5 to 63 characters of letters, digits and '-', and must start and end with a letter "
                    "or digit.",
                    _key(path, "name"),
                )
            if any(v.name == name for v in volumes):
                raise self._invalid(
                    "DuplicateVolumeName",
                    f"The volume name '{name}' is used more than once in {self.cg}.",
                    _key(path, "name"),
                )
            self._reject_unless_empty(
                obj,
                "secretReference",
                path,
                "Key Vault secret references are not implemented by this server.",
            )
            kinds = [k for k in ("azureFile", "emptyDir", "secret", "gitRepo") if _opt(obj, k) is not None]
            if len(kinds) != 1:
                raise self._invalid(
                    "InvalidVolumeType",
                    f"The volume '{name}' in {self.cg} must have exactly one of "
                    "'azureFile', 'emptyDir', 'secret' or 'gitRepo'.",
                    path,
                )
            kind = kinds[0]
            value = _opt(obj, kind)
            if kind == "azureFile":
                _as_obj(value, _key(path, kind), "AzureFileVolume")
                raise self._unsupported(
                    _key(path, kind),
                    "there is no Azure Files service to mount shares from; use an 'emptyDir', 'secret' or "
                    "'gitRepo' volume.",
                )
            if kind == "emptyDir":
                _as_obj(value, _key(path, kind), "EmptyDirVolume")
                volumes.append(VolumeDefinition(name=name, kind="emptyDir"))
            elif kind == "secret":
                files = self._secret_files(value, _key(path, kind), name)
                volumes.append(VolumeDefinition(name=name, kind="secret", secret=files))
            else:
                volumes.append(
                    VolumeDefinition(
                        name=name, kind="gitRepo", git_repo=self._git_repo(value, _key(path, kind), name)
                    )
                )
        return tuple(volumes)

    def _secret_files(self, raw: Any, path: str, volume: str) -> dict[str, bytes]:
        obj = _as_obj(raw, path, _STRING_MAP)
        files: dict[str, bytes] = {}
        for file_name, encoded in obj.items():
            file_path = _key(path, file_name)
            if not SECRET_FILE.fullmatch(file_name) or file_name in (".", ".."):
                raise self._invalid(
                    "InvalidSecretVolume",
                    f"The secret file name '{file_name[:255]}' in volume '{volume}' of container group "
                    f"'{self.group}' is invalid. File names are 1 to 255 characters of letters, digits, "
                    "'.', '_' and '-'.",
                    file_path,
                )
            if not isinstance(encoded, str):
                raise _type_error(encoded, file_path, _STRING, want="scalar", secret=True)
            try:
                files[file_name] = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self._invalid(
                    "InvalidSecretVolume",
                    f"The value of secret file '{file_name}' in volume '{volume}' of container group "
                    f"'{self.group}' is not valid base64.",
                    file_path,
                ) from exc
        if sum(len(v) for v in files.values()) > MAX_SECRET_BYTES:
            raise self._invalid(
                "InvalidSecretVolume",
                f"The secret volume '{volume}' of {self.cg} holds more than {MAX_SECRET_BYTES >> 20} MiB.",
                path,
            )
        return files

    def _git_repo(self, raw: Any, path: str, volume: str) -> GitRepoDefinition:
        obj = _as_obj(raw, path, "GitRepoVolume")
        repository = _req_str(obj, "repository", path)
        directory = _opt_str(obj, "directory", path)
        revision = _opt_str(obj, "revision", path)
        # The host clones the repository: a local path or file:// URL would copy the host's own
        # files into the container, and ssh would use the host's keys.
        if not _GIT_URL.fullmatch(repository):
            raise self._invalid(
                "InvalidGitRepoVolume",
                f"The repository '{_clip(repository)}' of git repo volume '{volume}' in {self.cg} is "
                "invalid. It must be an 'https', 'http' or 'git' URL.",
                _key(path, "repository"),
            )
        # A revision is a commit, branch or tag name; never something git could take for an option.
        if revision is not None and not _GIT_REVISION.fullmatch(revision):
            raise self._invalid(
                "InvalidGitRepoVolume",
                f"The revision '{_clip(revision)}' of git repo volume '{volume}' in {self.cg} is invalid.",
                _key(path, "revision"),
            )
        # The spec: "Must not contain or start with '..'"; an absolute path would leave the volume.
        if directory is not None and (
            ".." in directory or directory.startswith(("/", "-")) or "\0" in directory
        ):
            raise self._invalid(
                "InvalidGitRepoVolume",
                f"The directory '{_clip(directory)}' of git repo volume '{volume}' in {self.cg} "
                "is invalid. It must be a relative path that does not contain '..'.",
                _key(path, "directory"),
            )
        return GitRepoDefinition(repository=repository, directory=directory, revision=revision)

    # containers

    def _containers(self, props: dict[str, Any], volumes: set[str]) -> tuple[ContainerDefinition, ...]:
        raw = _required(props, "containers", "properties")
        items = _as_list(raw, "properties.containers", _list_of("Container"))
        if not items:
            raise self._invalid(
                "NoContainersInContainerGroup",
                f"The {self.cg} must have at least one container.",
                "properties.containers",
            )
        if len(items) > MAX_CONTAINERS:
            raise self._invalid(
                "TooManyContainersInContainerGroup",
                f"The {self.cg} has {len(items)} containers; at most {MAX_CONTAINERS} are allowed.",
                "properties.containers",
            )
        containers: list[ContainerDefinition] = []
        seen_ports: dict[tuple[int, str], str] = {}
        for i, item in enumerate(items):
            path = _index("properties.containers", i)
            containers.append(self._container(_as_obj(item, path, "Container"), path, volumes, seen_ports))
        return tuple(containers)

    def _container(
        self, obj: dict[str, Any], path: str, volumes: set[str], seen_ports: dict[tuple[int, str], str]
    ) -> ContainerDefinition:
        name = self._container_name(obj, path)
        ppath = _key(path, "properties")
        props = _as_obj(_required(obj, "properties", path), ppath, "ContainerProperties")
        image = self._image(props, ppath, name)
        self._reject_unless_empty(
            props, "configMap", ppath, "config maps (a newer api-version) are not implemented by this server."
        )
        ports = self._container_ports(props, ppath, name, seen_ports)
        return ContainerDefinition(
            name=name,
            image=image,
            command=_strings(props, "command", ppath),
            ports=ports,
            environment_variables=self._env(props, ppath, name),
            resources=self._resources(props, ppath, name),
            volume_mounts=self._volume_mounts(props, ppath, name, volumes),
            liveness_probe=self._probe(props, "livenessProbe", ppath, name),
            readiness_probe=self._probe(props, "readinessProbe", ppath, name),
            security_context=self._security_context(props, ppath, name),
        )

    def _init_containers(
        self, props: dict[str, Any], volumes: set[str]
    ) -> tuple[InitContainerDefinition, ...]:
        out: list[InitContainerDefinition] = []
        for path, obj in _items(props, "initContainers", "properties", "InitContainerDefinition"):
            name = self._container_name(obj, path)
            ppath = _key(path, "properties")
            cprops = _as_obj(_required(obj, "properties", path), ppath, "InitContainerPropertiesDefinition")
            for key in ("ports", "resources", "livenessProbe", "readinessProbe"):
                if _opt(cprops, key) is not None:
                    raise self._invalid(
                        "InvalidInitContainer",
                        f"The init container '{name}' of {self.cg} cannot have '{key}'. "
                        "Init containers share the group's resources, expose no ports and have no probes.",
                        _key(ppath, key),
                    )
            out.append(
                InitContainerDefinition(
                    name=name,
                    image=self._image(cprops, ppath, name),
                    command=_strings(cprops, "command", ppath),
                    environment_variables=self._env(cprops, ppath, name),
                    volume_mounts=self._volume_mounts(cprops, ppath, name, volumes),
                    security_context=self._security_context(cprops, ppath, name),
                )
            )
        return tuple(out)

    def _container_name(self, obj: dict[str, Any], path: str) -> str:
        name = _req_str(obj, "name", path)
        if not _CONTAINER_NAME.fullmatch(name):
            raise self._invalid(
                "InvalidContainerName",
                f"The container name '{_clip(name)}' in {self.cg} is invalid. A container name "
                "must contain no more than 63 characters and must match the regex "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
                _key(path, "name"),
            )
        return name

    def _check_unique_names(
        self,
        containers: tuple[ContainerDefinition, ...],
        init_containers: tuple[InitContainerDefinition, ...],
    ) -> None:
        # Init containers and containers share one namespace (logs, exec and events name them).
        seen: set[str] = set()
        for name in [c.name for c in containers] + [c.name for c in init_containers]:
            if name in seen:
                raise self._invalid(
                    "DuplicateContainerName",
                    f"The container name '{name}' is used more than once in {self.cg}. "
                    "Container and init container names must be unique.",
                    "properties.containers",
                )
            seen.add(name)

    def _image(self, props: dict[str, Any], path: str, container: str) -> str:
        image = _req_str(props, "image", path)
        try:
            parse_reference(image)
        except InvalidArgument as exc:
            raise self._invalid(
                "InvalidImageReference",
                f"The image '{image[:300]}' of container '{container}' in {self.cg} is "
                f"invalid: {exc.message}",
                _key(path, "image"),
            ) from exc
        return image

    def _port(self, obj: dict[str, Any], path: str, code: str, where: str) -> PortDefinition:
        port = _as_int(_required(obj, "port", path), _key(path, "port"))
        if not 1 <= port <= 65535:
            raise self._invalid(
                code,
                f"The port '{port}' {where} is invalid. A port must be between 1 and 65535.",
                _key(path, "port"),
            )
        protocol_raw = _opt(obj, "protocol")
        protocols: tuple[PortProtocol, ...] = ("TCP", "UDP")
        protocol: PortProtocol | None = "TCP"
        if protocol_raw is not None:
            protocol = _canonical(_as_str(protocol_raw, _key(path, "protocol")), protocols)
        if protocol is None:
            raise self._invalid(
                "InvalidPortProtocol",
                f"The protocol of port '{port}' {where} is invalid. The value must be one of 'TCP,UDP'.",
                _key(path, "protocol"),
            )
        return PortDefinition(port=port, protocol=protocol)

    def _container_ports(
        self, props: dict[str, Any], path: str, container: str, seen: dict[tuple[int, str], str]
    ) -> tuple[PortDefinition, ...]:
        where = f"in container '{container}' of {self.cg}"
        ports: list[PortDefinition] = []
        for ppath, obj in _items(props, "ports", path, "ContainerPort"):
            port = self._port(obj, ppath, "InvalidContainerPort", where)
            key = (port.port, port.protocol)
            # The containers of a group share one network namespace: a port can have one listener.
            if key in seen:
                other = seen[key]
                raise self._invalid(
                    "DuplicateContainerPort",
                    f"The port '{port.port}/{port.protocol}' {where} is already used by container '{other}'. "
                    "Containers in a group share one network namespace.",
                    ppath,
                )
            seen[key] = container
            ports.append(port)
        return tuple(ports)

    def _env(self, props: dict[str, Any], path: str, container: str) -> tuple[EnvVar, ...]:
        out: list[EnvVar] = []
        for epath, obj in _items(props, "environmentVariables", path, "EnvironmentVariable"):
            name = _req_str(obj, "name", epath)
            if not _ENV_NAME.fullmatch(name):
                raise self._invalid(
                    "InvalidEnvironmentVariableName",
                    f"The environment variable name '{name[:100]}' in container '{container}' of "
                    f"{self.cg} is invalid. It must be 1 to 63 characters of letters, digits and '_'.",
                    _key(epath, "name"),
                )
            if any(e.name == name for e in out):
                raise self._invalid(
                    "DuplicateEnvironmentVariableName",
                    f"The environment variable '{name}' is set more than once in container '{container}' of "
                    f"{self.cg}.",
                    _key(epath, "name"),
                )
            self._reject_unless_empty(
                obj,
                "secureValueReference",
                epath,
                "Key Vault secret references are not implemented by this server.",
            )
            value = _opt_str(obj, "value", epath)
            secure = _opt_str(obj, "secureValue", epath, secret=True)
            if value is not None and secure is not None:
                raise self._invalid(
                    "InvalidEnvironmentVariable",
                    f"The environment variable '{name}' in container '{container}' of container group "
                    f"'{self.group}' has both 'value' and 'secureValue'. Set at most one of them.",
                    epath,
                )
            out.append(EnvVar(name=name, value=value, secure_value=secure))
        return tuple(out)

    # resources

    def _resources(self, props: dict[str, Any], path: str, container: str) -> ResourcesDefinition:
        rpath = _key(path, "resources")
        not_specified = self._invalid(
            "ResourceRequestsNotSpecified",
            f"The resource requests are not specified in container '{container}' of contain group "
            f"'{self.group}'. Both memory and CPU requests are required since API version "
            "'2017-07-01-preview'.",
            rpath,
        )
        raw = _opt(props, "resources")
        if raw is None:
            raise not_specified
        obj = _as_obj(raw, rpath, "ResourceRequirements")
        req_raw = _opt(obj, "requests")
        if req_raw is None:
            raise not_specified
        qpath = _key(rpath, "requests")
        req = _as_obj(req_raw, qpath, "ResourceRequests")
        cpu_raw, memory_raw = _opt(req, "cpu"), _opt(req, "memoryInGB")
        if cpu_raw is None and memory_raw is None:
            raise not_specified
        for raw_value, label, key in ((memory_raw, "MemoryInGB", "memoryInGB"), (cpu_raw, "Cpu", "cpu")):
            if raw_value is None:
                raise self._invalid(
                    "ResourceSomeRequestsNotSpecified",
                    f"The '{label}' request is not specified in container '{container}' of contain group "
                    f"'{self.group}'. It is required since API version '2017-07-01-preview'.",
                    _key(qpath, key),
                )
        cpu = _as_float(cpu_raw, _key(qpath, "cpu"))
        memory = _as_float(memory_raw, _key(qpath, "memoryInGB"))
        if _opt(req, "gpu") is not None:
            raise self._unsupported(_key(qpath, "gpu"), "this host has no GPUs to assign to containers.")
        limits: ResourceLimitsDefinition | None = None
        lim_raw = _opt(obj, "limits")
        lpath = _key(rpath, "limits")
        if lim_raw is not None:
            lim = _as_obj(lim_raw, lpath, "ResourceLimits")
            limits = ResourceLimitsDefinition(
                cpu=_opt_float(lim, "cpu", lpath), memory_in_gb=_opt_float(lim, "memoryInGB", lpath)
            )
            if _opt(lim, "gpu") is not None:
                raise self._unsupported(_key(lpath, "gpu"), "this host has no GPUs to assign to containers.")
        requests = ResourceRequestsDefinition(cpu=cpu, memory_in_gb=memory)
        resources = ResourcesDefinition(requests=requests, limits=limits)
        self._check_resources(resources, container, rpath)
        return resources

    def _requirement_text(self, resources: ResourcesDefinition) -> str:
        """The requirement as ACI quotes it: ``{"requests":{"memoryInGB":4.0,"cpu":2.0},...}``."""
        out: dict[str, Any] = {
            "requests": {"memoryInGB": resources.requests.memory_in_gb, "cpu": resources.requests.cpu}
        }
        if resources.limits is not None:
            limits = {"memoryInGB": resources.limits.memory_in_gb, "cpu": resources.limits.cpu}
            out["limits"] = {k: v for k, v in limits.items() if v is not None}
        return json.dumps(out, separators=(",", ":"))

    def _check_resources(self, resources: ResourcesDefinition, container: str, path: str) -> None:
        limits = resources.limits or ResourceLimitsDefinition()
        requirement = self._requirement_text(resources)
        checks = (
            ("Cpu", "request", resources.requests.cpu, "requests.cpu"),
            ("MemoryInGB", "request", resources.requests.memory_in_gb, "requests.memoryInGB"),
            ("Cpu", "limit", limits.cpu, "limits.cpu"),
            ("MemoryInGB", "limit", limits.memory_in_gb, "limits.memoryInGB"),
        )
        for label, kind, value, suffix in checks:
            if value is not None and value <= 0:
                raise self._invalid(
                    "InvalidResourceRequirements",
                    f"The resource requirement '{requirement}' in container '{container}' "
                    f"of {self.cg} is invalid. The '{label}' {kind} value must be greater "
                    "than 0.",
                    f"{path}.{suffix}",
                )
        pairs = (
            ("Cpu", limits.cpu, resources.requests.cpu, "limits.cpu"),
            ("MemoryInGB", limits.memory_in_gb, resources.requests.memory_in_gb, "limits.memoryInGB"),
        )
        for label, limit, request, suffix in pairs:
            if limit is not None and limit < request:
                raise self._invalid(
                    "ResourceLimitsLessThanRequests",
                    f"The resource requirement '{requirement}' in container '{container}' of contain group "
                    f"'{self.group}' is invalid. The '{label}' limit value must be greater than or equal to "
                    "the request value.",
                    f"{path}.{suffix}",
                )

    def _check_group_resources(self, containers: tuple[ContainerDefinition, ...]) -> None:
        total_cpu = sum(c.resources.requests.cpu for c in containers)
        total_memory = sum(c.resources.requests.memory_in_gb for c in containers)
        for i, c in enumerate(containers):
            limits = c.resources.limits
            if limits is None:
                continue
            for label, limit, total, key in (
                ("Cpu", limits.cpu, total_cpu, "cpu"),
                ("MemoryInGB", limits.memory_in_gb, total_memory, "memoryInGB"),
            ):
                if limit is not None and limit > total + 1e-9:
                    raise self._invalid(
                        "ContainerLimitGreaterThanContainerGroupTotalRequest",
                        f"The '{label}' limit '{_number(limit)}' in container '{c.name}' is greater than the "
                        f"total request '{_number(total)}' of {self.cg}.",
                        f"properties.containers[{i}].properties.resources.limits.{key}",
                    )
        if total_cpu > self.max_cpu + 1e-9 or total_memory > self.max_memory_gb + 1e-9:
            raise self._invalid(
                "ResourceRequestsExceedMaximum",
                f"The requested resource with '{_number(total_cpu)}' CPU and '{total_memory:.1f}' GB memory "
                f"exceeds the maximum of '{_number(self.max_cpu)}' CPU and '{self.max_memory_gb:.1f}' GB "
                "memory per container group on this host. Please retry with a different resource request.",
                "properties.containers",
            )

    # mounts, probes, security

    def _volume_mounts(
        self, props: dict[str, Any], path: str, container: str, volumes: set[str]
    ) -> tuple[VolumeMountDefinition, ...]:
        where = f"in container '{container}' of {self.cg}"
        out: list[VolumeMountDefinition] = []
        for mpath, obj in _items(props, "volumeMounts", path, "VolumeMount"):
            name = _req_str(obj, "name", mpath)
            mount_path = _req_str(obj, "mountPath", mpath)
            read_only = _opt_bool(obj, "readOnly", mpath) or False
            if name not in volumes:
                raise self._invalid(
                    "InvalidVolumeMount",
                    f"The volume mount '{_clip(name)}' {where} refers to a volume that is not defined in the "
                    "container group's 'volumes'.",
                    _key(mpath, "name"),
                )
            if ":" in mount_path:
                raise self._invalid(
                    "InvalidVolumeMountPath",
                    f"The volume mount path '{_clip(mount_path)}' {where} is invalid. The volume mount path "
                    "cannot contain ':'.",
                    _key(mpath, "mountPath"),
                )
            normalized = mount_path.rstrip("/")
            if (
                not mount_path.startswith("/")
                or not normalized
                or ".." in mount_path.split("/")
                or "\0" in mount_path
            ):
                raise self._invalid(
                    "InvalidVolumeMountPath",
                    f"The volume mount path '{_clip(mount_path)}' {where} is invalid. It must be an absolute "
                    "path other than '/' without '..'.",
                    _key(mpath, "mountPath"),
                )
            for other in out:
                if other.name == name or other.mount_path.rstrip("/") == normalized:
                    raise self._invalid(
                        "InvalidVolumeMount",
                        f"The volume mount '{_clip(name)}' at '{_clip(mount_path)}' {where} repeats a volume "
                        "or a mount path; each volume can be mounted once per container, at its own path.",
                        mpath,
                    )
            out.append(VolumeMountDefinition(name=name, mount_path=mount_path, read_only=read_only))
        return tuple(out)

    def _probe(self, props: dict[str, Any], key: str, path: str, container: str) -> ProbeDefinition | None:
        raw = _opt(props, key)
        if raw is None:
            return None
        ppath = _key(path, key)
        obj = _as_obj(raw, ppath, "ContainerProbe")
        kind = "liveness" if key == "livenessProbe" else "readiness"
        where = f"The {kind} probe of container '{container}' in {self.cg}"

        def bad(message: str, target: str) -> InvalidArgument:
            return self._invalid("InvalidProbe", f"{where} {message}", target)

        exec_raw, http_raw = _opt(obj, "exec"), _opt(obj, "httpGet")
        if (exec_raw is None) == (http_raw is None):
            raise bad("must have exactly one of 'exec' or 'httpGet'.", ppath)
        command: tuple[str, ...] | None = None
        http_get: HttpGetDefinition | None = None
        if exec_raw is not None:
            epath = _key(ppath, "exec")
            command = _strings(_as_obj(exec_raw, epath, "ContainerExec"), "command", epath)
            if not command:
                raise bad("has an empty 'exec.command'.", _key(epath, "command"))
        else:
            http_get = self._http_get(http_raw, _key(ppath, "httpGet"), bad)
        numbers: dict[str, int] = {}
        for name, default, minimum in (
            ("initialDelaySeconds", 0, 0),
            ("periodSeconds", 10, 1),
            ("failureThreshold", 3, 1),
            ("successThreshold", 1, 1),
            ("timeoutSeconds", 1, 1),
        ):
            value = _opt_int(obj, name, ppath)
            if value is not None and value < minimum:
                raise bad(f"has '{name}' {value}; it must be at least {minimum}.", _key(ppath, name))
            numbers[name] = default if value is None else value
        return ProbeDefinition(
            exec_command=command,
            http_get=http_get,
            initial_delay_seconds=numbers["initialDelaySeconds"],
            period_seconds=numbers["periodSeconds"],
            failure_threshold=numbers["failureThreshold"],
            success_threshold=numbers["successThreshold"],
            timeout_seconds=numbers["timeoutSeconds"],
        )

    def _http_get(self, raw: Any, path: str, bad: Callable[[str, str], InvalidArgument]) -> HttpGetDefinition:
        obj = _as_obj(raw, path, "ContainerHttpGet")
        port = _as_int(_required(obj, "port", path), _key(path, "port"))
        if not 1 <= port <= 65535:
            raise bad(f"has port '{port}'; a port must be between 1 and 65535.", _key(path, "port"))
        scheme_raw = _opt_str(obj, "scheme", path)
        schemes: tuple[ProbeScheme, ...] = ("http", "https")
        scheme: ProbeScheme | None = "http" if scheme_raw is None else _canonical(scheme_raw, schemes)
        if scheme is None:
            raise bad("has an invalid scheme. The value must be one of 'http,https'.", _key(path, "scheme"))
        headers: list[HttpHeaderDefinition] = []
        for hpath, header in _items(obj, "httpHeaders", path, "HttpHeader"):
            name = _opt_str(header, "name", hpath)
            if not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise bad("has an HTTP header without a valid name.", _key(hpath, "name"))
            value = _opt_str(header, "value", hpath) or ""
            # The prober writes these into a request: no line breaks that would forge more of it.
            if re.search(r"[\r\n\0]", value):
                raise bad(f"has a value for HTTP header '{name}' with a line break.", _key(hpath, "value"))
            headers.append(HttpHeaderDefinition(name=name, value=value))
        probe_path = _opt_str(obj, "path", path)
        if probe_path is not None and re.search(r"[\s\0]", probe_path):
            raise bad("has a path with white space or control characters.", _key(path, "path"))
        return HttpGetDefinition(port=port, path=probe_path, scheme=scheme, headers=tuple(headers))

    def _security_context(
        self, props: dict[str, Any], path: str, container: str
    ) -> SecurityContextDefinition | None:
        raw = _opt(props, "securityContext")
        if raw is None:
            return None
        spath = _key(path, "securityContext")
        obj = _as_obj(raw, spath, "SecurityContextDefinition")
        if _opt_bool(obj, "privileged", spath):
            raise self._unsupported(
                _key(spath, "privileged"), "privileged containers would have full control of the host."
            )
        seccomp = _opt_str(obj, "seccompProfile", spath)
        if seccomp:
            raise self._unsupported(
                _key(spath, "seccompProfile"),
                "custom seccomp profiles are not applied; the default profile is.",
            )
        adds: tuple[str, ...] = ()
        drops: tuple[str, ...] = ()
        caps_raw = _opt(obj, "capabilities")
        if caps_raw is not None:
            cpath = _key(spath, "capabilities")
            caps = _as_obj(caps_raw, cpath, "SecurityContextCapabilitiesDefinition")
            adds = self._capabilities(caps, "add", cpath, container, allow_all=False)
            drops = self._capabilities(caps, "drop", cpath, container, allow_all=True)
            for i, cap in enumerate(adds):
                if cap not in ADDABLE_CAPABILITIES:
                    raise self._unsupported(
                        _index(_key(cpath, "add"), i),
                        f"adding capability '{cap}' would give the container more than this host allows; "
                        "only Docker's default capabilities and NET_ADMIN can be added.",
                    )
        ids: dict[str, int | None] = {}
        for key in ("runAsUser", "runAsGroup"):
            value = _opt_int(obj, key, spath)
            if value is not None and value < 0:
                raise self._invalid(
                    "InvalidSecurityContext",
                    f"The '{key}' of container '{container}' in {self.cg} must not be negative.",
                    _key(spath, key),
                )
            ids[key] = value
        return SecurityContextDefinition(
            allow_privilege_escalation=_opt_bool(obj, "allowPrivilegeEscalation", spath),
            capabilities_add=adds,
            capabilities_drop=drops,
            run_as_user=ids["runAsUser"],
            run_as_group=ids["runAsGroup"],
        )

    def _capabilities(
        self, caps: dict[str, Any], key: str, path: str, container: str, *, allow_all: bool
    ) -> tuple[str, ...]:
        out: list[str] = []
        for i, name in enumerate(_strings(caps, key, path)):
            cap = name.strip().upper()
            cap = cap.removeprefix("CAP_")
            if cap not in LINUX_CAPABILITIES and not (allow_all and cap == ALL_CAPABILITIES):
                raise self._invalid(
                    "InvalidSecurityContext",
                    f"The capability '{name[:64]}' of container '{container}' in {self.cg} "
                    "is not a Linux capability.",
                    _index(_key(path, key), i),
                )
            if cap not in out:
                out.append(cap)
        return tuple(out)

    # registry credentials

    def _credentials(
        self, props: dict[str, Any], identity: GroupIdentity | None
    ) -> tuple[RegistryCredentialDefinition, ...]:
        out: list[RegistryCredentialDefinition] = []
        for path, obj in _items(props, "imageRegistryCredentials", "properties", "ImageRegistryCredential"):
            server = _req_str(obj, "server", path)
            username = _opt_str(obj, "username", path)
            password = _opt_str(obj, "password", path, secret=True)
            uami = _opt_str(obj, "identity", path)
            identity_url = _opt_str(obj, "identityUrl", path)
            if not server or "://" in server or re.search(r"[\s/]", server):
                raise self._invalid(
                    "InvalidImageRegistryServer",
                    f"The server '{server[:300]}' in the 'imageRegistryCredentials' of container group "
                    f"'{self.group}' is invalid. Give the registry's host name (and port) without a protocol "
                    "such as 'http' or 'https' and without a path.",
                    _key(path, "server"),
                )
            if uami and not _api_at_least(self.api_version, REGISTRY_IDENTITY_API_VERSION):
                raise self._invalid(
                    "InvalidImageRegistryCredentialType",
                    f"Identity in 'imageRegistryCredentials' of {self.cg} is not supported.",
                    _key(path, "identity"),
                )
            # Both kinds, or neither (a password alone included): the type cannot be detected.
            if bool(uami) == bool(username or password) or (password and not username):
                raise self._invalid(
                    "AmbiguousImageResitryCredentialType",
                    f"The registry credential type in the 'imageRegistryCredentials' of container group "
                    f"'{self.group}' cannot be detected. Please set exactly one of username or identity",
                    path,
                )
            if uami and (identity is None or identity.find_user_assigned(uami) is None):
                # Also a system-assigned identity ('[system]'): ACI pulls only with user-assigned ones.
                listed = identity.user_assigned if identity is not None else ()
                raise InvalidArgument(
                    f"The identity in the 'imageRegistryCredentials' of {self.cg} not found "
                    "in container group identity list.",
                    code="InvalidImageRegistryIdentity",
                    target=_key(path, "identity"),
                    additional_info=(identity_not_attached_diagnosis(uami, server, listed).as_info(),),
                )
            out.append(
                RegistryCredentialDefinition(
                    server=server,
                    username=username or None,
                    password=password,
                    identity=uami or None,
                    identity_url=identity_url,
                )
            )
        return tuple(out)

    # network

    def _ip_address(
        self, props: dict[str, Any], containers: tuple[ContainerDefinition, ...]
    ) -> IpAddressDefinition | None:
        raw = _opt(props, "ipAddress")
        if raw is None:
            return None
        path = "properties.ipAddress"
        obj = _as_obj(raw, path, "IpAddress")
        ports_raw = _required(obj, "ports", path)
        type_text = _req_str(obj, "type", path)
        ip_types: tuple[str, ...] = ("Public", "Private")
        ip_type = _canonical(type_text, ip_types)
        if ip_type is None:
            raise self._invalid(
                "InvalidIpAddressType",
                f"The IP address type '{type_text[:64]}' of {self.cg} is invalid. The value "
                "must be one of 'Public,Private'.",
                _key(path, "type"),
            )
        if ip_type == "Private":
            raise self._unsupported(
                _key(path, "type"),
                "a private IP address needs an Azure virtual network, which this host does not have; use "
                "'Public'.",
            )
        ports_path = _key(path, "ports")
        items = _as_list(ports_raw, ports_path, _list_of("Port"))
        if not items:
            raise self._invalid(
                "MissingIpAddressPorts",
                f"The ports in the 'ipAddress' of {self.cg} cannot be empty.",
                ports_path,
            )
        where = f"in the 'ipAddress' of {self.cg}"
        ports: list[PortDefinition] = []
        for i, item in enumerate(items):
            ppath = _index(ports_path, i)
            port = self._port(_as_obj(item, ppath, "Port"), ppath, "InvalidIpAddressPorts", where)
            if port in ports:
                raise self._invalid(
                    "InvalidIpAddressPorts",
                    f"The port '{port.port}/{port.protocol}' is listed more than once {where}.",
                    ppath,
                )
            ports.append(port)
        # ACI has no port mapping: every exposed port must be a port of some container.
        used = {p for c in containers for p in c.ports}
        unused = [p for p in ports if p not in used]
        if unused:
            raise self._invalid(
                "InvalidIpAddressPorts",
                f"Following ports '{', '.join(str(p.port) for p in unused)}' in the 'ipAddress' are not "
                f"used by any container in {self.cg}.",
                ports_path,
            )
        label = _opt_str(obj, "dnsNameLabel", path) or None
        if label is not None and not _DNS_LABEL.fullmatch(label):
            raise self._invalid(
                "InvalidDnsNameLabel",
                f"The DNS name label '{label[:100]}' of {self.cg} is invalid. A DNS name "
                "label must be 5 to 63 characters of letters, digits and '-', and must start and end with a "
                "letter or digit.",
                _key(path, "dnsNameLabel"),
            )
        scope_text = _opt_str(obj, "autoGeneratedDomainNameLabelScope", path)
        scopes = ("Unsecure", "TenantReuse", "SubscriptionReuse", "ResourceGroupReuse", "Noreuse")
        scope = "Unsecure" if scope_text is None else _canonical(scope_text, scopes)
        if scope is None:
            raise self._invalid(
                "InvalidAutoGeneratedDomainNameLabelScope",
                f"The 'autoGeneratedDomainNameLabelScope' of {self.cg} is invalid. The value "
                f"must be one of '{','.join(scopes)}'.",
                _key(path, "autoGeneratedDomainNameLabelScope"),
            )
        # `ip` is what GET reports; ACI ignores a requested address, so GET-modify-PUT works unchanged.
        return IpAddressDefinition(
            ports=tuple(ports),
            type="Public",
            dns_name_label=label,
            auto_generated_domain_name_label_scope=scope,
        )

    def _dns_config(self, props: dict[str, Any]) -> DnsConfigDefinition | None:
        raw = _opt(props, "dnsConfig")
        if raw is None:
            return None
        path = "properties.dnsConfig"
        obj = _as_obj(raw, path, "DnsConfiguration")
        _required(obj, "nameServers", path)
        servers = _strings(obj, "nameServers", path)
        if not servers:
            raise self._invalid(
                "InvalidDnsConfig",
                f"The 'nameServers' of the DNS configuration of {self.cg} cannot be empty.",
                _key(path, "nameServers"),
            )
        for i, server in enumerate(servers):
            try:
                ipaddress.ip_address(server)
            except ValueError as exc:
                raise self._invalid(
                    "InvalidDnsConfig",
                    f"The name server '{server[:64]}' in the DNS configuration of {self.cg} "
                    "is not an IP address.",
                    _index(_key(path, "nameServers"), i),
                ) from exc
        search = _opt_str(obj, "searchDomains", path) or ""
        options = _opt_str(obj, "options", path) or ""
        return DnsConfigDefinition(
            name_servers=servers, search_domains=tuple(search.split()), options=tuple(options.split())
        )


def parse_group(
    body: Any,
    *,
    name: str,
    api_version: str,
    location_default: str | None = None,
    max_cpu: float = MAX_GROUP_CPU,
    max_memory_gb: float = MAX_GROUP_MEMORY_GB,
) -> GroupDefinition:
    """Validate a container group PUT body for the group ``name`` sent with ``api_version``.

    ``location_default`` is used when the body has no ``location``; ``max_cpu``/``max_memory_gb``
    bound the sum of the containers' requests. Raises ``InvalidArgument`` (malformed body: code
    ``InvalidRequestContent``; a broken ACI rule: ACI's code) or ``NotSupported`` (code
    ``UnsupportedFeature``: a field this host cannot honour). See the module docstring.
    """
    return _GroupParser(name, api_version, max_cpu, max_memory_gb).parse(body, location_default)


# -- masking --------------------------------------------------------------------------------------------


def _values(obj: Any, key: str) -> list[Any]:
    """The values of every property of ``obj`` named ``key`` in any casing (a stored body keeps the
    client's casing, and parse_group matched names case-insensitively)."""
    if not isinstance(obj, dict):
        return []
    lowered = key.lower()
    return [value for name, value in obj.items() if name.lower() == lowered]


def _dicts(obj: Any, key: str) -> list[dict[str, Any]]:
    """The objects in the arrays (or the objects) held by ``obj[key]``."""
    out: list[dict[str, Any]] = []
    for value in _values(obj, key):
        items = value if isinstance(value, list) else [value]
        out.extend(item for item in items if isinstance(item, dict))
    return out


def _null(obj: dict[str, Any], key: str, *, always: bool = False) -> None:
    """Set every casing of ``key`` in ``obj`` to null (and add ``key: null`` when ``always``)."""
    lowered = key.lower()
    names = [name for name in obj if name.lower() == lowered]
    for name in names:
        obj[name] = None
    if always and not names:
        obj[key] = None


def mask_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of the ARM body ``body`` without secret values, for GET and LIST answers.

    As ACI shows them: every registry credential has ``password: null``; a secure environment
    variable keeps its name with ``secureValue: null``; secret volumes keep their file names with
    null contents; ``storageAccountKey``, ``workspaceKey``, ``workspaceResourceId`` and extension
    ``protectedSettings`` become null. Property names match in any casing. ``body`` itself is not
    changed.
    """
    out = copy.deepcopy(body)
    for props in _dicts(out, "properties"):
        for credential in _dicts(props, "imageRegistryCredentials"):
            _null(credential, "password", always=True)
        for container in _dicts(props, "containers") + _dicts(props, "initContainers"):
            for cprops in _dicts(container, "properties"):
                for env in _dicts(cprops, "environmentVariables"):
                    _null(env, "secureValue")
        for volume in _dicts(props, "volumes"):
            for name in list(volume):
                if name.lower() == "secret":
                    secret = volume[name]
                    volume[name] = dict.fromkeys(secret) if isinstance(secret, dict) else None
            for azure_file in _dicts(volume, "azureFile"):
                _null(azure_file, "storageAccountKey")
        for diagnostics in _dicts(props, "diagnostics"):
            for log_analytics in _dicts(diagnostics, "logAnalytics"):
                _null(log_analytics, "workspaceKey")
                _null(log_analytics, "workspaceResourceId")
        for extension in _dicts(props, "extensions"):
            for eprops in _dicts(extension, "properties"):
                _null(eprops, "protectedSettings")
    return out
