"""ARM resource ids and request paths.

ARM matches path segments case-insensitively (clients send both ``resourcegroups`` and
``resourceGroups``); names keep the casing the client first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from moorage.core.errors import InvalidArgument


@dataclass(frozen=True)
class ResourceRef:
    """A (possibly nested, possibly extension) provider resource, its collection, or an action.

    ``scope`` is everything before the last ``/providers/{namespace}`` chain (the subscription,
    resource group, or parent resource for extension resources). ``types`` and ``names`` are the
    chain's alternating segments: equal lengths address one resource; one more type than names
    addresses a collection (GET) or, when the last type is an action, an action (POST).
    """

    subscription_id: str | None
    resource_group: str | None
    scope: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def is_collection(self) -> bool:
        return len(self.types) == len(self.names) + 1

    @property
    def resource_type(self) -> str:
        """``Namespace/type[/childType]`` of the addressed resource or collection."""
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        return self.names[-1] if self.names else ""

    @property
    def id(self) -> str:
        """The resource id (for a collection: the collection's path)."""
        parts = [self.scope.rstrip("/"), "providers", self.namespace]
        for i, type_ in enumerate(self.types):
            parts.append(type_)
            if i < len(self.names):
                parts.append(self.names[i])
        return "/".join(parts)

    def parent(self) -> ResourceRef:
        """The item one level up (``registries/r`` for ``registries/r/scopeMaps/m``)."""
        count = len(self.names) - (0 if self.is_collection else 1)
        return ResourceRef(
            self.subscription_id,
            self.resource_group,
            self.scope,
            self.namespace,
            self.types[:count],
            self.names[:count],
        )

    def as_collection_plus(self, action: str) -> ResourceRef:
        return ResourceRef(
            self.subscription_id,
            self.resource_group,
            self.scope,
            self.namespace,
            (*self.types, action),
            self.names,
        )


def segments(path: str) -> list[str]:
    return [unquote(s) for s in path.split("/") if s]


def scope_of(path_segments: list[str]) -> tuple[str | None, str | None]:
    """Subscription and resource group named at the start of a path, if any."""
    sub = rg = None
    if len(path_segments) >= 2 and path_segments[0].lower() == "subscriptions":
        sub = path_segments[1]
        if len(path_segments) >= 4 and path_segments[2].lower() == "resourcegroups":
            rg = path_segments[3]
    return sub, rg


def parse_provider_path(path: str) -> ResourceRef | None:
    """Parse a path that contains a ``providers/{namespace}/...`` chain, or return ``None``."""
    segs = segments(path)
    idx = [i for i, s in enumerate(segs) if s.lower() == "providers"]
    # The last "providers" that is followed by a namespace and at least one type.
    idx = [i for i in idx if i + 2 < len(segs)]
    if not idx:
        return None
    last = idx[-1]
    scope_segs = segs[:last]
    chain = segs[last + 1 :]
    if len(chain) < 2:
        return None
    namespace, rest = chain[0], chain[1:]
    types = tuple(rest[0::2])
    names = tuple(rest[1::2])
    sub, rg = scope_of(scope_segs)
    return ResourceRef(sub, rg, "/" + "/".join(scope_segs), namespace, types, names)


def parse_resource_id(resource_id: str) -> ResourceRef:
    """Parse a full resource id (as found in request bodies); raise ``InvalidArgument`` if not one."""
    ref = parse_provider_path(resource_id)
    if ref is None or ref.is_collection or not ref.subscription_id:
        raise InvalidArgument(
            f"The resource id '{resource_id}' is not a valid resource id.", code="LinkedInvalidPropertyId"
        )
    return ref


def resource_group_id(subscription_id: str, name: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{name}"


def normalize_location(location: str) -> str:
    """ARM's canonical location name: ``West US`` → ``westus``."""
    return location.replace(" ", "").lower()
