"""Resource ids as the template language builds them (pure string work, no lookups).

A resource type is ``Namespace/type[/childType...]``; a full name has one segment per type
segment (``registry/scopeMap``). The legacy extension form is supported: a ``providers`` segment in
the type takes its namespace from the name (type
``Microsoft.ContainerRegistry/registries/providers/roleAssignments`` with name
``acr/Microsoft.Authorization/0b5f...`` is the role assignment
``.../registries/acr/providers/Microsoft.Authorization/roleAssignments/0b5f...``).
"""

from __future__ import annotations

from dataclasses import dataclass


class ResourceIdError(ValueError):
    """A type or a name list that cannot make a resource id; the message says why."""


def split_type(resource_type: str) -> tuple[str, list[str]]:
    """``Namespace/a/b`` -> (``Namespace``, [``a``, ``b``])."""
    segments = resource_type.strip("/").split("/")
    if len(segments) < 2 or not all(segments):
        raise ResourceIdError(
            f"the type '{resource_type}' is not a valid resource type: it must be 'Namespace/type' with an "
            "optional list of child types"
        )
    return segments[0], segments[1:]


def name_segment_count(resource_type: str) -> int:
    """How many name segments a resource of ``resource_type`` has: one per type segment (a
    ``providers`` segment takes the extension's namespace as its "name")."""
    _, types = split_type(resource_type)
    return len(types)


def split_name(name: str) -> list[str]:
    return name.split("/")


def provider_path(resource_type: str, names: list[str]) -> str:
    """``/providers/Namespace/a/n1/b/n2`` for ``resource_type`` and its name segments."""
    namespace, types = split_type(resource_type)
    expected = name_segment_count(resource_type)
    if len(names) != expected:
        raise ResourceIdError(f"the type '{resource_type}' requires '{expected}' resource name argument(s)")
    parts = [f"/providers/{namespace}"]
    remaining = list(names)
    for segment in types:
        if segment.casefold() == "providers":
            parts.append(f"/providers/{remaining.pop(0)}")
            continue
        parts.append(f"/{segment}/{remaining.pop(0)}")
    return "".join(parts)


def is_resource_group_type(resource_type: str) -> bool:
    return resource_type.casefold() == "microsoft.resources/resourcegroups"


def resource_id(scope: str, resource_type: str, names: list[str]) -> str:
    """The id of a resource of ``resource_type`` named ``names`` below ``scope`` (``""`` for the
    tenant, ``/subscriptions/s``, ``/subscriptions/s/resourceGroups/g`` or a resource id for
    extension resources). Resource groups get their canonical id
    (``/subscriptions/s/resourceGroups/g``)."""
    scope = scope.rstrip("/")
    if (
        is_resource_group_type(resource_type)
        and len(names) == 1
        and scope.casefold().startswith("/subscriptions/")
    ):
        subscription = scope.split("/")[2]
        return f"/subscriptions/{subscription}/resourceGroups/{names[0]}"
    return scope + provider_path(resource_type, names)


@dataclass(frozen=True)
class ParsedId:
    """The last provider chain of a resource id: what the id addresses and where."""

    scope: str  # everything before the last "/providers/"
    resource_type: str  # Namespace/type[/child]
    name: str  # name segments joined with "/"


def parse_id(resource_id_text: str) -> ParsedId | None:
    """Split a resource id at its last ``/providers/`` segment; ``None`` when it has none and is
    not a resource group or subscription id."""
    segments = resource_id_text.strip("/").split("/")
    folded = [s.casefold() for s in segments]
    if "providers" in folded:
        at = len(folded) - 1 - folded[::-1].index("providers")
        rest = segments[at + 1 :]
        if len(rest) < 3 or len(rest) % 2 == 0:
            return None
        namespace, pairs = rest[0], rest[1:]
        types = pairs[0::2]
        names = pairs[1::2]
        scope = "/" + "/".join(segments[:at]) if at else ""
        return ParsedId(scope, "/".join([namespace, *types]), "/".join(names))
    if len(folded) == 4 and folded[0] == "subscriptions" and folded[2] == "resourcegroups":
        return ParsedId(f"/subscriptions/{segments[1]}", "Microsoft.Resources/resourceGroups", segments[3])
    if len(folded) == 2 and folded[0] == "subscriptions":
        return ParsedId("", "Microsoft.Resources/subscriptions", segments[1])
    return None
