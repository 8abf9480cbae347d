"""Comparison, logical and numeric functions."""

from __future__ import annotations

import pytest

from moorage.deployments.templates import Json, TemplateError
from tests.unit.templates.support import ev


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("[equals(1, 1)]", True),
        ("[equals('a', 'A')]", False),
        ("[equals(createArray(1, 'a'), createArray(1, 'a'))]", True),
        ("[equals(createObject('a', 1), createObject('a', 1))]", True),
        ("[equals(1, '1')]", False),
        ("[equals(true(), 1)]", False),
        ("[less(1, 2)]", True),
        ("[less('A', 'a')]", True),
        ("[lessOrEquals(2, 2)]", True),
        ("[greater(10, 5)]", True),
        ("[greater('A', 'a')]", False),
        ("[greaterOrEquals('b', 'a')]", True),
        ("[and(true(), true(), false())]", False),
        ("[or(false(), false(), true())]", True),
        ("[not(true())]", False),
        ("[if(equals('a', 'a'), 'yes', 'no')]", "yes"),
        ("[bool('true')]", True),
        ("[bool('FALSE')]", False),
        ("[bool(1)]", True),
        ("[bool(0)]", False),
        ("[true()]", True),
        ("[false()]", False),
        ("[add(5, 3)]", 8),
        ("[sub(7, 3)]", 4),
        ("[mul(5, 3)]", 15),
        ("[div(8, 3)]", 2),
        ("[div(-8, 3)]", -2),
        ("[mod(7, 3)]", 1),
        ("[mod(-7, 3)]", -1),
        ("[int('4')]", 4),
        ("[int(' -12 ')]", -12),
        ("[float('3.5')]", 3.5),
        ("[float(2)]", 2.0),
    ],
)
def test_values(expression: str, expected: Json) -> None:
    value = ev(expression)
    assert value == expected
    assert type(value) is type(expected)


def test_if_evaluates_only_the_branch_it_returns() -> None:
    assert ev("[if(true(), 'ok', createArray(1)[5])]") == "ok"
    assert ev("[if(false(), createArray(1)[5], 'ok')]") == "ok"


def test_and_or_stop_at_the_deciding_argument() -> None:
    assert ev("[and(false(), equals(createArray()[0], 1))]") is False
    assert ev("[or(true(), equals(createArray()[0], 1))]") is True


def test_if_condition_must_be_boolean() -> None:
    text = "[if('yes', 1, 2)]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "expects its first parameter to be of type 'Boolean'" in caught.value.message
    assert caught.value.position == text.index("'yes'")


def test_comparing_a_number_with_a_string_is_an_error() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[less(1, 'a')]")
    assert "'Integer' and 'String'" in caught.value.message


def test_division_by_zero() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[div(1, 0)]")
    assert "divisor must not be zero" in caught.value.message


def test_integer_overflow_is_an_error() -> None:
    with pytest.raises(TemplateError):
        ev("[mul(9223372036854775807, 2)]")


def test_int_of_text_that_is_not_a_number() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[int('four')]")
    assert "can't be converted to an integer" in caught.value.message


def test_bool_of_other_text() -> None:
    with pytest.raises(TemplateError):
        ev("[bool('yes')]")


def test_numeric_functions_need_integers() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[add('1', 2)]")
    assert "expects its first parameter to be of type 'Integer'" in caught.value.message


def test_and_needs_two_arguments() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[and(true())]")
    assert "function requires at least 2 argument(s) while 1 were provided" in caught.value.message
