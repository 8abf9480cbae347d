"""The expression grammar: literals, escapes, calls, property access, indexing, errors."""

from __future__ import annotations

import pytest

from moorage.deployments.templates import TemplateError
from moorage.deployments.templates.errors import ExpressionError
from moorage.deployments.templates.expressions import (
    Call,
    Index,
    IntegerLiteral,
    Member,
    ParsedExpression,
    StringLiteral,
    parse_string_value,
)
from tests.unit.templates.support import ev


def parsed(text: str) -> ParsedExpression:
    result = parse_string_value(text)
    assert isinstance(result, ParsedExpression)
    return result


def parse_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        parse_string_value(text)
    return caught.value


def test_plain_strings_are_literal() -> None:
    assert parse_string_value("hello") == "hello"
    assert parse_string_value("[not closed") == "[not closed"
    assert parse_string_value("closed only]") == "closed only]"
    assert parse_string_value("") == ""


def test_double_bracket_escapes_a_literal_bracket() -> None:
    assert parse_string_value("[[variables('x')]") == "[variables('x')]"
    assert ev("[[this is text]") == "[this is text]"


def test_string_literal_with_doubled_quote() -> None:
    root = parsed("['it''s']").root
    assert root == StringLiteral("it's", 1)


def test_integer_literals_including_negative() -> None:
    assert parsed("[42]").root == IntegerLiteral(42, 1)
    assert parsed("[-7]").root == IntegerLiteral(-7, 1)
    assert ev("[add(5, -7)]") == -2


def test_nested_calls_keep_positions() -> None:
    root = parsed("[concat('a', toLower('B'))]").root
    assert isinstance(root, Call)
    assert root.name == "concat"
    assert root.pos == 1
    inner = root.args[1]
    assert isinstance(inner, Call)
    assert inner.pos == len("[concat('a', ")


def test_property_access_and_indexing_chain() -> None:
    root = parsed("[resourceGroup().tags['env'][0].x]").root
    assert isinstance(root, Member)
    assert root.name == "x"
    assert isinstance(root.target, Index)
    assert isinstance(root.target.target, Index)


def test_whitespace_and_newlines_between_tokens() -> None:
    assert ev("[ concat (\n 'a' ,\t'b' ) ]") == "ab"


def test_function_names_are_case_insensitive() -> None:
    assert ev("[CONCAT('a', ToLower('B'))]") == "ab"


def test_property_names_are_case_insensitive() -> None:
    assert ev("[createObject('Name', 'v').NAME]") == "v"


def test_index_by_computed_property_name() -> None:
    assert ev("[createObject('a-b', 1)[concat('a', '-b')]]") == 1


def test_user_function_call_syntax() -> None:
    root = parsed("[contoso.uniqueName('x')]").root
    assert isinstance(root, Call)
    assert (root.namespace, root.name) == ("contoso", "uniqueName")


def test_expressions_in_arrays_and_object_keys() -> None:
    value = ev({"[concat('k', '1')]": ["[add(1, 1)]", "plain", {"n": "[true()]"}]})
    assert value == {"k1": [2, "plain", {"n": True}]}


def test_unclosed_call_is_reported_with_token_names() -> None:
    error = parse_error("[concat('a']")
    assert error.message == (
        "Unable to parse language expression 'concat('a'': expected token 'RightParenthesis' and actual "
        "'EndOfData'."
    )
    assert error.position == len("[concat('a'")


def test_missing_comma_points_at_the_unexpected_token() -> None:
    text = "[concat('a' 'b')]"
    error = parse_error(text)
    assert "expected token 'RightParenthesis' and actual 'String'" in error.message
    assert error.position == text.index("'b'")


def test_unterminated_string_literal_points_at_its_quote() -> None:
    text = "[concat('a', 'b)]"
    error = parse_error(text)
    assert error.position == text.index("'b")


def test_bare_identifier_is_not_a_value() -> None:
    text = "[concat(a)]"
    error = parse_error(text)
    assert "expected token 'LeftParenthesis' and actual 'RightParenthesis'" in error.message
    assert error.position == text.index(")")


def test_unexpected_character() -> None:
    text = "[concat('a') + 'b']"
    error = parse_error(text)
    assert "the character '+'" in error.message
    assert error.position == text.index("+")


def test_trailing_tokens_after_the_expression() -> None:
    text = "[concat('a') concat('b')]"
    error = parse_error(text)
    assert "expected token 'EndOfData' and actual 'Identifier'" in error.message
    assert error.position == text.rindex("concat")


def test_empty_expression() -> None:
    error = parse_error("[]")
    assert "the expression is empty" in error.message


def test_parse_errors_surface_as_invalid_template_with_path() -> None:
    with pytest.raises(TemplateError) as caught:
        ev({"a": ["[concat('x' 'y')]"]})
    assert caught.value.code == "InvalidTemplate"
    assert caught.value.path == "value.a[0]"
    assert caught.value.position == len("[concat('x' ")


def test_unknown_function_error_names_it_and_its_position() -> None:
    text = "[concat('a', nosuch(1))]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "The template function 'nosuch' is not found." in caught.value.message
    assert caught.value.position == text.index("nosuch")


def test_missing_property_lists_the_available_ones() -> None:
    text = "[createObject('a', 1, 'b', 2).c]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "The language expression property 'c' doesn't exist, available properties are 'a, b'." in (
        caught.value.message
    )
    assert caught.value.position == text.index(".c")


def test_array_index_out_of_bounds() -> None:
    text = "[createArray(1, 2)[2]]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "The language expression property array index '2' is out of bounds." in caught.value.message
    assert caught.value.position == text.index("[2]")


def test_property_of_a_string_is_an_error() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("['text'.length]")
    assert "can't be evaluated" in caught.value.message


def test_evaluation_error_message_has_azures_envelope() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[int('x')]")
    assert caught.value.message.startswith("Deployment template language expression evaluation failed: '")
    assert caught.value.additional_info[0].type == "TemplateViolation"
