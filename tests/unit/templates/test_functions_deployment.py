"""Deployment and scope functions: parameters, variables, copyIndex, resourceGroup,
subscription, tenant, deployment, environment."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.deployments.templates import TemplateError, TemplateFeatureNotSupported, azure_cloud_environment
from tests.unit.templates.support import RG, RG_ID, SUB, TENANT, ev, make_context, template


def test_resource_group() -> None:
    assert ev("[resourceGroup()]") == {
        "id": RG_ID,
        "name": RG,
        "type": "Microsoft.Resources/resourceGroups",
        "location": "westeurope",
        "tags": {"env": "test"},
        "properties": {"provisioningState": "Succeeded"},
    }
    assert ev("[resourceGroup().location]") == "westeurope"


def test_resource_group_at_subscription_scope_is_refused() -> None:
    context = make_context(resource_group=None, location="westus")
    with pytest.raises(TemplateError) as caught:
        ev("[resourceGroup().id]", context=context)
    assert "The template function 'resourceGroup' is not expected at this location." in caught.value.message


def test_subscription_and_tenant() -> None:
    assert ev("[subscription()]") == {
        "id": f"/subscriptions/{SUB}",
        "subscriptionId": SUB,
        "tenantId": TENANT,
        "displayName": "moorage",
    }
    assert ev("[tenant().tenantId]") == TENANT
    assert ev("[tenant().id]") == f"/tenants/{TENANT}"


def test_deployment() -> None:
    value = ev("[deployment()]", template=template())
    assert value == {
        "name": "dep1",
        "properties": {
            "template": {
                "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                "contentVersion": "1.0.0.0",
            },
            "parameters": {},
            "mode": "Incremental",
            "provisioningState": "Accepted",
        },
    }


def test_deployment_name_and_template_link() -> None:
    context = make_context(template_link={"uri": "https://example.test/t/azuredeploy.json"})
    assert ev("[deployment().name]", context=context) == "dep1"
    assert ev("[uri(deployment().properties.templateLink.uri, 'nested/x.json')]", context=context) == (
        "https://example.test/t/nested/x.json"
    )


def test_environment() -> None:
    context = make_context(
        environment=azure_cloud_environment(
            resource_manager="https://127.0.0.1:8443/", acr_login_server_suffix=".registry.local"
        )
    )
    assert ev("[environment().suffixes.acrLoginServer]", context=context) == ".registry.local"
    assert ev("[environment().resourceManager]", context=context) == "https://127.0.0.1:8443/"
    assert ev("[environment().name]") == "AzureCloud"


def test_management_group_is_not_supported() -> None:
    with pytest.raises(TemplateFeatureNotSupported):
        ev("[managementGroup()]")


def test_parameters_by_name_ignoring_case() -> None:
    doc = template(parameters={"Size": {"type": "int"}})
    assert ev("[parameters('size')]", template=doc, parameters={"size": {"value": 3}}) == 3


def test_unknown_parameter() -> None:
    text = "[parameters('nope')]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "The template parameter 'nope' is not found." in caught.value.message
    assert caught.value.position == 1


def test_variables_are_evaluated_once_and_may_use_each_other() -> None:
    doc = template(
        parameters={"prefix": {"type": "string", "defaultValue": "pre"}},
        variables={"a": "[concat(parameters('prefix'), '-', variables('b'))]", "B": "[toUpper('x')]"},
    )
    assert ev("[variables('A')]", template=doc) == "pre-X"


def test_unknown_variable() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[variables('nope')]")
    assert "The template variable 'nope' is not found." in caught.value.message


def test_circular_variables() -> None:
    doc = template(variables={"a": "[variables('b')]", "b": "[variables('a')]"})
    with pytest.raises(TemplateError) as caught:
        ev("[variables('a')]", template=doc)
    assert "circular reference" in caught.value.message


def test_error_inside_a_variable_points_at_the_variable() -> None:
    doc = template(variables={"bad": "[concat('x', int('y'))]"})
    with pytest.raises(TemplateError) as caught:
        ev("[variables('bad')]", template=doc)
    assert "The template variable 'bad' is not valid:" in caught.value.message
    assert caught.value.path == "properties.template.variables.bad"
    assert caught.value.position == len("[concat('x', ")


def test_variable_copy_loop_builds_an_array() -> None:
    doc = template(
        variables={
            "copy": [
                {"name": "disks", "count": 3, "input": {"name": "[concat('disk', copyIndex('disks'))]"}}
            ],
        }
    )
    assert ev("[variables('disks')]", template=doc) == [
        {"name": "disk0"},
        {"name": "disk1"},
        {"name": "disk2"},
    ]


def test_property_copy_loop_inside_a_variable() -> None:
    doc: dict[str, Any] = template(
        variables={
            "config": {
                "copy": [{"name": "ports", "count": 2, "input": "[add(8080, copyIndex('ports'))]"}],
                "name": "web",
            }
        }
    )
    assert ev("[variables('config')]", template=doc) == {"name": "web", "ports": [8080, 8081]}


def test_copy_index_outside_a_loop() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[copyIndex()]")
    assert "The template function 'copyIndex' is not expected at this location." in caught.value.message


def test_property_loop_in_evaluated_value_with_offset() -> None:
    value = ev({"copy": [{"name": "items", "count": 2, "input": "[copyIndex('items', 1)]"}]})
    assert value == {"items": [1, 2]}


def test_copy_index_names_an_unknown_loop() -> None:
    with pytest.raises(TemplateError) as caught:
        ev({"copy": [{"name": "items", "count": 1, "input": "[copyIndex('other')]"}]})
    assert "'other'" in caught.value.message


def test_copy_count_must_be_a_small_non_negative_integer() -> None:
    for count in (-1, 801, "'3'"):
        with pytest.raises(TemplateError) as caught:
            ev({"copy": [{"name": "items", "count": f"[{count}]", "input": "x"}]})
        assert "invalid copy count" in caught.value.message
