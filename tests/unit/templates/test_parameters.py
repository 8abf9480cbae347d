"""bind_parameters: values, defaults, types, constraints, unknown and missing parameters, Key Vault
references, and secure values kept out of messages and reprs. Messages follow the ones Azure
returns (quoted in public issue reports: "The value for the template parameter 'x' ... is not
provided", "Template parameter JToken type is not valid. Expected 'Boolean'. Actual 'String'.",
"The template parameters 'a, b' in the parameters file are not valid; ...")."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.core.errors import InvalidArgument
from moorage.deployments.templates import (
    BoundParameters,
    Json,
    ParameterError,
    TemplateError,
    TemplateFeatureNotSupported,
    bind_parameters,
    parse_template,
)
from tests.unit.templates.support import CONTEXT, template

SECRET = "Sup3r-Secret-Passw0rd!"


def bind(parameters: dict[str, Any], values: dict[str, Any] | None) -> BoundParameters:
    return bind_parameters(parse_template(template(parameters=parameters)), values, CONTEXT)


def bind_error(parameters: dict[str, Any], values: dict[str, Any] | None) -> ParameterError:
    with pytest.raises(ParameterError) as caught:
        bind(parameters, values)
    assert caught.value.code == "InvalidTemplate"
    return caught.value


def test_provided_values_by_name_ignoring_case() -> None:
    bound = bind({"Name": {"type": "string"}}, {"NAME": {"value": "x"}})
    assert bound["name"] == "x"
    assert list(bound) == ["Name"]


def test_defaults_fill_missing_values() -> None:
    bound = bind({"n": {"type": "int", "defaultValue": 2}}, None)
    assert dict(bound) == {"n": 2}


def test_default_may_use_other_parameters_and_scope_functions() -> None:
    bound = bind(
        {
            "name": {
                "type": "string",
                "defaultValue": "[concat(parameters('prefix'), '-', resourceGroup().location)]",
            },
            "prefix": {"type": "string", "defaultValue": "app"},
        },
        None,
    )
    assert bound["name"] == "app-westeurope"


def test_default_uses_the_provided_value_of_another_parameter() -> None:
    bound = bind(
        {"a": {"type": "string", "defaultValue": "[parameters('b')]"}, "b": {"type": "string"}},
        {"b": {"value": "B"}},
    )
    assert bound["a"] == "B"


def test_new_guid_in_a_default() -> None:
    assert bind({"g": {"type": "string", "defaultValue": "[newGuid()]"}}, None)["g"] == (
        "0d7b2d8f-3c1a-4a36-9d55-2b8f1e6a7c90"
    )


def test_circular_defaults() -> None:
    with pytest.raises(TemplateError) as caught:
        bind(
            {
                "a": {"type": "string", "defaultValue": "[parameters('b')]"},
                "b": {"type": "string", "defaultValue": "[parameters('a')]"},
            },
            None,
        )
    assert "circular reference" in caught.value.message


def test_variables_are_not_allowed_in_defaults() -> None:
    with pytest.raises(TemplateError) as caught:
        bind_parameters(
            parse_template(
                template(
                    parameters={"a": {"type": "int", "defaultValue": "[variables('v')]"}}, variables={"v": 1}
                )
            ),
            None,
            CONTEXT,
        )
    assert "The template function 'variables' is not expected at this location." in caught.value.message
    assert (
        "The template parameter 'a' at path 'properties.template.parameters.a' is not valid"
        in caught.value.message
    )


def test_missing_required_parameter() -> None:
    error = bind_error({"repositoryUrl": {"type": "string"}}, None)
    assert error.message == (
        "Deployment template validation failed: 'The value for the template parameter 'repositoryUrl' at "
        "path 'properties.template.parameters.repositoryUrl' is not provided. Please see "
        "https://aka.ms/arm-create-parameter-file for usage details.'."
    )
    info = error.additional_info[0]
    assert info.type == "TemplateViolation"
    assert info.info["path"] == "properties.template.parameters.repositoryUrl"


def test_unknown_parameters_are_listed() -> None:
    error = bind_error(
        {"a": {"type": "string"}, "b": {"type": "string"}},
        {"a": {"value": "1"}, "x": {"value": 1}, "y": {"value": 2}},
    )
    assert error.message == (
        "Deployment template validation failed: 'The template parameters 'x, y' in the parameters file are "
        "not valid; they are not present in the original template and can therefore not be provided at "
        "deployment time. The only supported parameters for this template are 'a, b'. Please see "
        "https://aka.ms/arm-pass-parameter-values for usage details.'."
    )


@pytest.mark.parametrize(
    ("kind", "value", "expected", "actual"),
    [
        ("bool", "true", "Boolean", "String"),
        ("int", "5", "Integer", "String"),
        ("int", True, "Integer", "Boolean"),
        ("string", 5, "String, Uri", "Integer"),
        ("object", [], "Object", "Array"),
        ("array", {}, "Array", "Object"),
        ("securestring", 1, "String, Uri", "Integer"),
        ("secureObject", "x", "Object", "String"),
    ],
)
def test_type_mismatch(kind: str, value: Json, expected: str, actual: str) -> None:
    error = bind_error({"p": {"type": kind}}, {"p": {"value": value}})
    assert (
        f"Template parameter JToken type is not valid. Expected '{expected}'. Actual '{actual}'. Please see "
        "https://aka.ms/resource-manager-parameter-files for usage details."
    ) in error.message
    assert error.path == "properties.parameters.p"


def test_default_of_the_wrong_type() -> None:
    error = bind_error({"p": {"type": "int", "defaultValue": "x"}}, None)
    assert error.path == "properties.template.parameters.p"


def test_allowed_values() -> None:
    definition = {"sku": {"type": "string", "allowedValues": ["Standard_LRS", "Standard_GRS"]}}
    assert bind(definition, {"sku": {"value": "Standard_GRS"}})["sku"] == "Standard_GRS"
    error = bind_error(definition, {"sku": {"value": "Premium_LRS"}})
    assert (
        "The provided value for the template parameter 'sku' at path 'properties.parameters.sku' is not "
        "valid. The parameter value is not part of the allowed value(s): 'Standard_LRS,Standard_GRS'."
    ) in error.message


def test_allowed_values_of_an_array_parameter_apply_to_each_element() -> None:
    definition = {"zones": {"type": "array", "allowedValues": ["1", "2", "3"]}}
    assert bind(definition, {"zones": {"value": ["1", "3"]}})["zones"] == ["1", "3"]
    bind_error(definition, {"zones": {"value": ["1", "4"]}})


def test_allowed_values_compare_case_sensitively() -> None:
    bind_error({"s": {"type": "string", "allowedValues": ["Basic"]}}, {"s": {"value": "basic"}})


def test_min_and_max_value() -> None:
    definition = {"n": {"type": "int", "minValue": 1, "maxValue": 3}}
    assert bind(definition, {"n": {"value": 3}})["n"] == 3
    assert (
        "Value should be greater than or equal to '1'." in bind_error(definition, {"n": {"value": 0}}).message
    )
    assert "Value should be less than or equal to '3'." in bind_error(definition, {"n": {"value": 4}}).message


def test_min_and_max_length_for_strings_and_arrays() -> None:
    definition = {
        "name": {"type": "string", "minLength": 3, "maxLength": 5},
        "a": {"type": "array", "maxLength": 1},
    }
    assert "Length of the value should be greater than or equal to '3'." in (
        bind_error(definition, {"name": {"value": "ab"}, "a": {"value": []}}).message
    )
    assert "Length of the value should be less than or equal to '5'." in (
        bind_error(definition, {"name": {"value": "abcdef"}, "a": {"value": []}}).message
    )
    assert (
        "less than or equal to '1'"
        in bind_error(definition, {"name": {"value": "abc"}, "a": {"value": [1, 2]}}).message
    )


def test_nullable_parameter_without_value() -> None:
    assert bind({"p": {"type": "string", "nullable": True}}, None)["p"] is None


def test_key_vault_reference_is_not_supported() -> None:
    values = {"pw": {"reference": {"keyVault": {"id": "/subscriptions/s/.../vaults/kv"}, "secretName": "pw"}}}
    with pytest.raises(TemplateFeatureNotSupported) as caught:
        bind({"pw": {"type": "securestring"}}, values)
    assert "Key Vault" in caught.value.message
    assert "'pw'" in caught.value.message


def test_entries_must_be_value_objects() -> None:
    with pytest.raises(InvalidArgument) as caught:
        bind({"p": {"type": "string"}}, {"p": "bare"})
    assert caught.value.code == "InvalidRequestContent"
    assert caught.value.target == "properties.parameters.p"
    with pytest.raises(InvalidArgument):
        bind({"p": {"type": "string"}}, {"p": {"val": 1}})


def test_echo_has_types_and_hides_secure_values() -> None:
    bound = bind(
        {
            "name": {"type": "string"},
            "pw": {"type": "securestring"},
            "cfg": {"type": "secureObject"},
            "n": {"type": "int"},
        },
        {"name": {"value": "x"}, "pw": {"value": SECRET}, "cfg": {"value": {"k": SECRET}}, "n": {"value": 1}},
    )
    assert bound.echo() == {
        "name": {"type": "String", "value": "x"},
        "pw": {"type": "SecureString"},
        "cfg": {"type": "SecureObject"},
        "n": {"type": "Int", "value": 1},
    }
    assert bound["pw"] == SECRET


def test_repr_hides_secure_values() -> None:
    bound = bind(
        {"pw": {"type": "securestring"}, "name": {"type": "string"}},
        {"pw": {"value": SECRET}, "name": {"value": "x"}},
    )
    assert SECRET not in repr(bound)
    assert "'name': 'x'" in repr(bound)


@pytest.mark.parametrize(
    ("definition", "value"),
    [
        ({"type": "securestring", "allowedValues": ["a-long-allowed-value"]}, SECRET),
        ({"type": "securestring", "maxLength": 5}, SECRET),
        ({"type": "securestring", "minLength": 50}, SECRET),
        ({"type": "secureObject", "allowedValues": [{"k": "v"}]}, {"k": SECRET}),
        ({"type": "securestring"}, {"k": SECRET}),
    ],
)
def test_secure_values_never_appear_in_errors(definition: dict[str, Any], value: Json) -> None:
    with pytest.raises(ParameterError) as caught:
        bind({"pw": definition}, {"pw": {"value": value}})
    error = caught.value
    for text in (error.message, str(error), repr(error), str(error.target), repr(error.additional_info)):
        assert SECRET not in text


def test_secure_value_in_a_failing_default_expression_is_redacted() -> None:
    with pytest.raises(TemplateError) as caught:
        bind(
            {
                "pw": {"type": "securestring"},
                "derived": {"type": "int", "defaultValue": "[createObject('x', 1)[parameters('pw')]]"},
            },
            {"pw": {"value": SECRET}},
        )
    assert SECRET not in caught.value.message
    assert "***" in caught.value.message
