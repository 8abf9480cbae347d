"""Resource functions: resource ids (pure), reference() and list*() through a resolver."""

from __future__ import annotations

import pytest

from moorage.deployments.templates import (
    CachedResolver,
    Json,
    MissingRuntimeValue,
    RuntimeCall,
    TemplateError,
)
from tests.unit.templates.support import RG_ID, SUB, ev, make_context, rid, template

STORAGE = "Microsoft.Storage/storageAccounts"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # learn.microsoft.com .../templates/template-functions-resource#resourceid examples
        (f"[resourceId('{STORAGE}', 'examplestorage')]", f"{RG_ID}/providers/{STORAGE}/examplestorage"),
        (
            f"[resourceId('otherResourceGroup', '{STORAGE}', 'examplestorage')]",
            f"/subscriptions/{SUB}/resourceGroups/otherResourceGroup/providers/{STORAGE}/examplestorage",
        ),
        (
            "[resourceId('11111111-1111-1111-1111-111111111111', 'otherResourceGroup', "
            "'Microsoft.SQL/servers/databases', 'serverName', 'databaseName')]",
            "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/otherResourceGroup/providers/Microsoft.SQL/servers/serverName/databases/databaseName",
        ),
        (
            "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'myVnet', 'mySubnet')]",
            f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/myVnet/subnets/mySubnet",
        ),
        (
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
            "'7f951dda-4ed3-4680-a7ca-43fe172d538d')]",
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/7f951dda-4ed3-4680-a7ca-43fe172d538d",
        ),
        (
            "[subscriptionResourceId('22222222-2222-2222-2222-222222222222', "
            "'Microsoft.Resources/resourceGroups', 'g')]",
            "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/g",
        ),
        (
            "[tenantResourceId('Microsoft.Authorization/policyDefinitions', 'p1')]",
            "/providers/Microsoft.Authorization/policyDefinitions/p1",
        ),
        (
            "[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks', 'lock1')]",
            f"{RG_ID}/providers/Microsoft.Authorization/locks/lock1",
        ),
        (
            f"[extensionResourceId(resourceId('{STORAGE}', 'sa'), "
            "'Microsoft.Authorization/roleAssignments', 'ra')]",
            f"{RG_ID}/providers/{STORAGE}/sa/providers/Microsoft.Authorization/roleAssignments/ra",
        ),
    ],
)
def test_resource_ids(expression: str, expected: str) -> None:
    assert ev(expression) == expected


def test_resource_id_at_subscription_scope_has_no_resource_group() -> None:
    context = make_context(resource_group=None, location="westus")
    assert ev("[resourceId('Microsoft.Resources/resourceGroups', 'g1')]", context=context) == (
        f"/subscriptions/{SUB}/resourceGroups/g1"
    )
    assert (
        ev(f"[resourceId('{STORAGE}', 'sa')]", context=context)
        == f"/subscriptions/{SUB}/providers/{STORAGE}/sa"
    )


def test_resource_id_needs_one_name_per_type_segment() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'onlyOne')]")
    assert "requires '2' resource name argument(s)" in caught.value.message


def test_resource_id_needs_a_type() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[resourceId('a', 'b')]")
    assert "resource type argument is missing" in caught.value.message


def test_reference_asks_the_resolver_for_the_properties() -> None:
    resolver = CachedResolver()
    target = rid("Microsoft.ManagedIdentity/userAssignedIdentities", "id1")
    resolver.add(RuntimeCall("reference", target, "2023-01-31"), {"principalId": "p-1"})
    value = ev(
        "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'id1'), "
        "'2023-01-31').principalId]",
        resolver=resolver,
    )
    assert value == "p-1"


def test_reference_full() -> None:
    resolver = CachedResolver()
    target = rid(STORAGE, "sa")
    resolver.add(
        RuntimeCall("reference", target, "2023-01-01", full=True), {"location": "westus", "properties": {}}
    )
    assert ev(
        f"[reference(resourceId('{STORAGE}', 'sa'), '2023-01-01', 'Full').location]", resolver=resolver
    ) == ("westus")


def test_reference_third_argument_must_be_full() -> None:
    with pytest.raises(TemplateError):
        ev(f"[reference(resourceId('{STORAGE}', 'sa'), '2023-01-01', 'Partial')]", resolver=CachedResolver())


def test_list_functions_carry_their_name_and_body() -> None:
    resolver = CachedResolver()
    registry = rid("Microsoft.ContainerRegistry/registries", "acr1")
    resolver.add(
        RuntimeCall("listCredentials", registry, "2023-07-01"),
        {"username": "acr1", "passwords": [{"name": "password", "value": "pw-1"}]},
    )
    resolver.add(RuntimeCall("listKeys", registry, "2023-07-01", body={"expand": "x"}), {"keys": []})
    expression = (
        "[listCredentials(resourceId('Microsoft.ContainerRegistry/registries', 'acr1'), "
        "'2023-07-01').passwords[0].value]"
    )
    assert ev(expression, resolver=resolver) == "pw-1"
    assert ev(
        "[listKeys(resourceId('Microsoft.ContainerRegistry/registries', 'acr1'), '2023-07-01', "
        "createObject('expand', 'x'))]",
        resolver=resolver,
    ) == {"keys": []}


def test_runtime_value_without_a_resolver_is_reported_as_missing() -> None:
    with pytest.raises(MissingRuntimeValue) as caught:
        ev(f"[reference(resourceId('{STORAGE}', 'sa'), '2023-01-01')]")
    assert caught.value.call == RuntimeCall("reference", rid(STORAGE, "sa"), "2023-01-01")


def test_runtime_calls_compare_case_insensitively() -> None:
    resolver = CachedResolver()
    resolver.add(RuntimeCall("REFERENCE", rid(STORAGE, "sa").upper(), "2023-01-01"), {"ok": True})
    assert ev(f"[reference(resourceId('{STORAGE}', 'sa'), '2023-01-01').ok]", resolver=resolver) is True


def test_reference_of_a_name_not_in_the_template() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[reference('nothere')]", resolver=CachedResolver())
    assert "The resource 'nothere' is not defined in the template." in caught.value.message


def test_reference_is_not_allowed_in_parameter_defaults() -> None:
    doc = template(parameters={"p": {"type": "object", "defaultValue": f"[reference('/x/{STORAGE}/sa')]"}})
    with pytest.raises(TemplateError) as caught:
        ev("[parameters('p')]", template=doc)
    assert "The template function 'reference' is not expected at this location." in caught.value.message


def test_resolver_values_are_copied() -> None:
    answer: Json = {"list": [1]}
    resolver = CachedResolver()
    resolver.add(RuntimeCall("reference", rid(STORAGE, "sa"), "1"), answer)
    value = ev(f"[reference(resourceId('{STORAGE}', 'sa'), '1').list]", resolver=resolver)
    assert isinstance(value, list)
    value.append(2)
    assert answer == {"list": [1]}
