"""Lambda functions and user-defined functions."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.deployments.templates import TemplateError
from tests.unit.templates.support import ev, template

DOGS = (
    "createArray(createObject('name', 'Evie', 'age', 5), createObject('name', 'Casper', 'age', 3), "
    "createObject('name', 'Indy', 'age', 2))"
)


def test_filter() -> None:
    assert ev(f"[filter({DOGS}, lambda('dog', greaterOrEquals(lambdaVariables('dog').age, 3)))]") == [
        {"name": "Evie", "age": 5},
        {"name": "Casper", "age": 3},
    ]


def test_map() -> None:
    assert ev(f"[map({DOGS}, lambda('dog', lambdaVariables('dog').name))]") == ["Evie", "Casper", "Indy"]


def test_reduce() -> None:
    expression = (
        f"[reduce({DOGS}, 0, lambda('cur', 'next', add(lambdaVariables('cur'), "
        "lambdaVariables('next').age)))]"
    )
    assert ev(expression) == 10


def test_sort_is_stable_and_uses_the_lambda_as_less_than() -> None:
    expression = (
        "[sort(createArray(3, 1, 2, 1), lambda('a', 'b', less(lambdaVariables('a'), lambdaVariables('b'))))]"
    )
    assert ev(expression) == [1, 1, 2, 3]


def test_to_object_with_and_without_value_lambda() -> None:
    assert ev(
        f"[toObject({DOGS}, lambda('d', lambdaVariables('d').name), lambda('d', lambdaVariables('d').age))]"
    ) == {
        "Evie": 5,
        "Casper": 3,
        "Indy": 2,
    }
    assert ev("[toObject(createArray('a'), lambda('x', lambdaVariables('x')))]") == {"a": "a"}


def test_map_values_and_group_by() -> None:
    assert ev("[mapValues(createObject('a', 1), lambda('v', mul(lambdaVariables('v'), 10)))]") == {"a": 10}
    assert ev("[groupBy(createArray('ab', 'ac', 'b'), lambda('x', first(lambdaVariables('x'))))]") == {
        "a": ["ab", "ac"],
        "b": ["b"],
    }


def test_lambda_is_not_a_value() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[lambda('x', 1)]")
    assert "The template function 'lambda' is not expected at this location." in caught.value.message


def test_lambda_argument_is_required() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[filter(createArray(1), true())]")
    assert "to be a lambda function" in caught.value.message


def test_lambda_variable_out_of_scope() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[map(createArray(1), lambda('x', lambdaVariables('y')))]")
    assert "The lambda variable 'y' is not defined at this location." in caught.value.message


def test_filter_lambda_must_return_a_boolean() -> None:
    with pytest.raises(TemplateError):
        ev("[filter(createArray(1), lambda('x', 1))]")


FUNCTIONS: list[Any] = [
    {
        "namespace": "contoso",
        "members": {
            "uniqueName": {
                "parameters": [{"name": "namePrefix", "type": "string"}],
                "output": {"type": "string", "value": "[concat(toLower(parameters('namePrefix')), 'x')]"},
            },
            "double": {
                "parameters": [{"name": "n", "type": "int"}],
                "output": {"type": "int", "value": "[mul(parameters('n'), 2)]"},
            },
            "broken": {"parameters": [], "output": {"type": "int", "value": "[variables('v')]"}},
            "wrongType": {"parameters": [], "output": {"type": "int", "value": "text"}},
            "nested": {"parameters": [], "output": {"type": "int", "value": "[contoso.double(1)]"}},
        },
    }
]
DOC = template(
    functions=FUNCTIONS, variables={"v": 1}, parameters={"p": {"type": "string", "defaultValue": "P"}}
)


def test_user_defined_function() -> None:
    assert ev("[contoso.uniqueName('ABC')]", template=DOC) == "abcx"
    assert ev("[CONTOSO.DOUBLE(21)]", template=DOC) == 42


def test_user_defined_function_argument_types_are_checked() -> None:
    text = "[contoso.double('2')]"
    with pytest.raises(TemplateError) as caught:
        ev(text, template=DOC)
    assert "expects its parameter 'n' to be of type 'Integer'" in caught.value.message
    assert caught.value.position == text.index("'2'")


def test_user_defined_function_arity() -> None:
    with pytest.raises(TemplateError):
        ev("[contoso.double()]", template=DOC)


def test_user_defined_function_cannot_see_variables() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[contoso.broken()]", template=DOC)
    assert "The user-defined function 'contoso.broken' is not valid" in caught.value.message
    assert caught.value.path == "properties.template.functions[0].members.broken.output.value"


def test_user_defined_function_output_type_is_checked() -> None:
    with pytest.raises(TemplateError):
        ev("[contoso.wrongType()]", template=DOC)


def test_user_defined_functions_cannot_call_each_other() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[contoso.nested()]", template=DOC)
    assert "can't be called from another user-defined function" in caught.value.message


def test_unknown_user_defined_function() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[contoso.nothing()]", template=DOC)
    assert "The template function 'contoso.nothing' is not found." in caught.value.message
