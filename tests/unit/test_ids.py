"""ARM path parsing."""

from __future__ import annotations

import pytest

from moorage.arm.ids import normalize_location, parse_provider_path, parse_resource_id
from moorage.core.errors import InvalidArgument

SUB = "/subscriptions/s1"


def test_nested_resource() -> None:
    ref = parse_provider_path(
        f"{SUB}/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/scopeMaps/m"
    )
    assert ref is not None
    assert (ref.subscription_id, ref.resource_group, ref.resource_type, ref.name) == (
        "s1",
        "g",
        "Microsoft.ContainerRegistry/registries/scopeMaps",
        "m",
    )
    assert ref.parent().id == f"{SUB}/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"


def test_extension_resource_scope_is_the_parent_resource() -> None:
    reg = f"{SUB}/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"
    ref = parse_provider_path(f"{reg}/providers/Microsoft.Authorization/roleAssignments/a1")
    assert ref is not None
    assert ref.scope == reg
    assert ref.resource_type == "Microsoft.Authorization/roleAssignments"
    assert ref.id == f"{reg}/providers/Microsoft.Authorization/roleAssignments/a1"


def test_collections_and_case() -> None:
    ref = parse_provider_path(
        f"{SUB}/RESOURCEGROUPS/g/PROVIDERS/Microsoft.ManagedIdentity/userAssignedIdentities"
    )
    assert ref is not None
    assert ref.is_collection
    assert ref.resource_group == "g"


@pytest.mark.parametrize("bad", ["/subscriptions/s1", "not-an-id", f"{SUB}/providers/Microsoft.X/things"])
def test_parse_resource_id_refuses_non_ids(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_resource_id(bad)


def test_locations_are_normalised() -> None:
    assert normalize_location("West US 2") == "westus2"
