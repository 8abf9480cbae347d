"""parse_template: the document's shape, and errors with Azure's codes and JSON paths."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.deployments.templates import (
    ParameterType,
    TemplateError,
    TemplateFeatureNotSupported,
    parse_template,
)
from moorage.deployments.templates.nodes import Const, Expr
from tests.unit.templates.support import template

SA = {
    "type": "Microsoft.Storage/storageAccounts",
    "apiVersion": "2023-01-01",
    "name": "sa1",
    "location": "westus",
}


def parse_error(doc: Any) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        parse_template(doc)
    assert caught.value.code == "InvalidTemplate"
    return caught.value


def test_minimal_template() -> None:
    parsed = parse_template(template([SA]))
    assert parsed.content_version == "1.0.0.0"
    assert parsed.schema is not None
    assert len(parsed.resources) == 1
    assert parsed.resources[0].type == "Microsoft.Storage/storageAccounts"


def test_members_match_ignoring_case() -> None:
    parsed = parse_template(
        {"ContentVersion": "1.0.0.0", "RESOURCES": [], "Parameters": {"a": {"Type": "String"}}}
    )
    assert parsed.parameter("A") is not None


def test_the_document_must_be_an_object() -> None:
    assert parse_error(["not", "an", "object"]).path == "properties.template"


def test_resources_are_required() -> None:
    error = parse_error({"contentVersion": "1.0.0.0"})
    assert "Required property 'resources' not found in JSON." in error.message


def test_unknown_top_level_member() -> None:
    error = parse_error(template(extra=1))
    assert error.message == (
        "Deployment template parse failed: 'Could not find member 'extra' on object of type 'Template'. "
        "Path 'properties.template.extra'.'."
    )
    assert error.path == "properties.template.extra"


def test_content_version_must_have_four_numbers() -> None:
    error = parse_error(template(contentVersion="1.0"))
    assert error.path == "properties.template.contentVersion"


def test_parameter_types() -> None:
    parsed = parse_template(
        template(
            parameters={
                "s": {"type": "string"},
                "ss": {"type": "securestring"},
                "i": {"type": "int"},
                "b": {"type": "bool"},
                "o": {"type": "object"},
                "so": {"type": "secureObject"},
                "a": {"type": "array"},
            }
        )
    )
    kinds = {d.name: d.type for d in parsed.parameters.values()}
    assert kinds == {
        "s": ParameterType.STRING,
        "ss": ParameterType.SECURE_STRING,
        "i": ParameterType.INT,
        "b": ParameterType.BOOL,
        "o": ParameterType.OBJECT,
        "so": ParameterType.SECURE_OBJECT,
        "a": ParameterType.ARRAY,
    }


def test_parameter_with_an_unknown_type() -> None:
    error = parse_error(template(parameters={"x": {"type": "number"}}))
    assert "has an invalid type 'number'" in error.message
    assert error.path == "properties.template.parameters.x.type"


def test_parameter_without_a_type() -> None:
    error = parse_error(template(parameters={"x": {"defaultValue": 1}}))
    assert "the 'type' is missing" in error.message


def test_parameter_with_an_unknown_member() -> None:
    error = parse_error(template(parameters={"x": {"type": "int", "minimum": 1}}))
    assert "Could not find member 'minimum' on object of type 'TemplateParameter'" in error.message


def test_parameter_constraints_are_kept() -> None:
    parsed = parse_template(
        template(
            parameters={
                "x": {
                    "type": "int",
                    "minValue": 1,
                    "maxValue": 5,
                    "allowedValues": [1, 3, 5],
                    "defaultValue": 3,
                    "metadata": {"description": "d"},
                },
                "y": {"type": "string", "minLength": 2, "maxLength": 4},
            }
        )
    )
    x = parsed.parameter("x")
    y = parsed.parameter("y")
    assert x is not None
    assert y is not None
    assert (x.min_value, x.max_value, x.allowed_values, x.metadata) == (1, 5, (1, 3, 5), {"description": "d"})
    assert (y.min_length, y.max_length) == (2, 4)


def test_constraint_of_the_wrong_type() -> None:
    error = parse_error(template(parameters={"x": {"type": "int", "minValue": "1"}}))
    assert error.path == "properties.template.parameters.x.minValue"


def test_type_references_are_not_supported() -> None:
    with pytest.raises(TemplateFeatureNotSupported):
        parse_template(template(parameters={"x": {"$ref": "#/definitions/t"}}))
    with pytest.raises(TemplateFeatureNotSupported):
        parse_template(template(definitions={"t": {"type": "string"}}))


def test_expression_syntax_errors_are_found_at_parse_time_with_path_and_position() -> None:
    doc = template([{**SA, "properties": {"x": {"y": "[concat('a' 'b')]"}}}])
    error = parse_error(doc)
    assert error.path == "properties.template.resources[0].properties.x.y"
    assert error.position == len("[concat('a' ")
    assert error.message.startswith(
        "Deployment template validation failed: 'The template language expression at path"
    )


def test_resource_type_is_required() -> None:
    error = parse_error(template([{"apiVersion": "1", "name": "x"}]))
    assert (
        "The template resource 'x' at path 'properties.template.resources[0]' is not valid" in error.message
    )
    assert "the 'type' property is required" in error.message


def test_resource_type_cannot_be_an_expression() -> None:
    error = parse_error(template([{**SA, "type": "[variables('t')]"}]))
    assert "the type property cannot be an expression" in error.message
    assert error.path == "properties.template.resources[0].type"


def test_resource_name_and_api_version_are_required() -> None:
    assert (
        "'name' property is required" in parse_error(template([{"type": "A.B/c", "apiVersion": "1"}])).message
    )
    assert (
        "'apiVersion' property is required" in parse_error(template([{"type": "A.B/c", "name": "n"}])).message
    )


def test_resource_members_split_between_template_and_body() -> None:
    parsed = parse_template(
        template(
            [
                {
                    **SA,
                    "sku": {"name": "Standard_LRS"},
                    "kind": "StorageV2",
                    "tags": {"a": "b"},
                    "dependsOn": [],
                    "comments": "note",
                    "managedBy": "someone",
                }
            ]
        )
    )
    body = parsed.resources[0].body
    assert isinstance(body, Const)
    assert body.value == {
        "location": "westus",
        "sku": {"name": "Standard_LRS"},
        "kind": "StorageV2",
        "tags": {"a": "b"},
        "managedBy": "someone",
    }
    assert parsed.resources[0].comments == "note"


def test_copy_definition() -> None:
    parsed = parse_template(
        template([{**SA, "copy": {"name": "loop", "count": 3, "mode": "serial", "batchSize": 2}}])
    )
    copy = parsed.resources[0].copy
    assert copy is not None
    assert (copy.name, copy.mode) == ("loop", "Serial")
    assert isinstance(copy.count, Const)


def test_copy_needs_name_count_and_a_known_mode() -> None:
    assert "must have a 'name'" in parse_error(template([{**SA, "copy": {"count": 2}}])).message
    assert "must have a 'count'" in parse_error(template([{**SA, "copy": {"name": "l"}}])).message
    assert (
        "'Parallel' or 'Serial'"
        in parse_error(template([{**SA, "copy": {"name": "l", "count": 1, "mode": "x"}}])).message
    )


def test_constant_condition_must_be_boolean() -> None:
    assert "condition" in parse_error(template([{**SA, "condition": "yes"}])).message


def test_nested_children_are_flattened_with_full_types() -> None:
    parsed = parse_template(
        template(
            [
                {
                    "type": "Microsoft.Network/virtualNetworks",
                    "apiVersion": "2023-04-01",
                    "name": "vnet",
                    "resources": [
                        {"type": "subnets", "apiVersion": "2023-04-01", "name": "s1"},
                        {
                            "type": "Microsoft.Network/virtualNetworks/subnets",
                            "apiVersion": "2023-04-01",
                            "name": "vnet/s2",
                        },
                    ],
                }
            ]
        )
    )
    types = [r.type for r in parsed.resources]
    assert types == ["Microsoft.Network/virtualNetworks"] + ["Microsoft.Network/virtualNetworks/subnets"] * 2
    assert parsed.resources[1].parent is parsed.resources[0]
    assert parsed.resources[1].path == "properties.template.resources[0].resources[0]"


def test_symbolic_name_resources() -> None:
    parsed = parse_template({"languageVersion": "2.0", "contentVersion": "1.0.0.0", "resources": {"sa": SA}})
    assert parsed.resources[0].symbolic_name == "sa"


def test_variables_with_copy_and_duplicates() -> None:
    parsed = parse_template(
        template(variables={"a": 1, "copy": [{"name": "l", "count": 2, "input": "[copyIndex('l')]"}]})
    )
    assert set(parsed.variables) == {"a", "l"}
    assert "defined more than once" in parse_error(template(variables={"a": 1, "A": 2})).message


def test_variable_copy_needs_name_count_input() -> None:
    assert "must have a 'name', a 'count' and an 'input'" in (
        parse_error(template(variables={"copy": [{"name": "l", "count": 2}]})).message
    )


def test_outputs() -> None:
    parsed = parse_template(
        template(
            outputs={
                "a": {"type": "string", "value": "[resourceGroup().name]"},
                "b": {"type": "array", "copy": {"count": 2, "input": "[copyIndex()]"}},
            }
        )
    )
    a, b = parsed.outputs
    assert isinstance(a.value, Expr)
    assert b.copy_count is not None
    assert b.value is None


def test_output_needs_value_or_copy_and_a_type() -> None:
    assert "either a 'value' or a 'copy'" in parse_error(template(outputs={"a": {"type": "string"}})).message
    assert "invalid type" in parse_error(template(outputs={"a": {"type": "text", "value": "x"}})).message


def test_user_defined_functions_are_parsed() -> None:
    parsed = parse_template(
        template(
            functions=[
                {
                    "namespace": "ns",
                    "members": {
                        "f": {
                            "parameters": [{"name": "a", "type": "string"}],
                            "output": {"type": "string", "value": "[parameters('a')]"},
                        }
                    },
                }
            ]
        )
    )
    function = parsed.functions["ns.f"]
    assert function.parameters == (("a", ParameterType.STRING),)


def test_user_defined_function_without_output() -> None:
    error = parse_error(template(functions=[{"namespace": "ns", "members": {"f": {"parameters": []}}}]))
    assert "must have an output" in error.message


def test_parameter_count_limit() -> None:
    error = parse_error(template(parameters={f"p{i}": {"type": "string"} for i in range(257)}))
    assert (
        "The number of template parameters limit exceeded. Limit: '256' and actual: '257'." in error.message
    )


def test_output_count_limit() -> None:
    error = parse_error(template(outputs={f"o{i}": {"type": "int", "value": i} for i in range(65)}))
    assert "Limit: '64' and actual: '65'" in error.message
