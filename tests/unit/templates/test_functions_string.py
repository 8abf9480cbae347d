"""String functions. Expected values marked "docs" are the outputs printed in
learn.microsoft.com/azure/azure-resource-manager/templates/template-functions-string for the same
inputs."""

from __future__ import annotations

import pytest

from moorage.deployments.templates import Json, TemplateError
from tests.unit.templates.support import ev


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # docs
        ("[base64('one, two, three')]", "b25lLCB0d28sIHRocmVl"),
        ("[base64ToString('b25lLCB0d28sIHRocmVl')]", "one, two, three"),
        ('[base64ToJson(base64(\'{"one": "a", "two": "b"}\'))]', {"one": "a", "two": "b"}),
        ("[dataUri('Hello')]", "data:text/plain;charset=utf8;base64,SGVsbG8="),
        ("[dataUriToString('data:;base64,SGVsbG8sIFdvcmxkIQ==')]", "Hello, World!"),
        (
            "[format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)]",
            "Hello, User. Formatted number: 8,175,133",
        ),
        ("[indexOf('test', 't')]", 0),
        ("[lastIndexOf('test', 't')]", 3),
        ("[indexOf('abcdef', 'CD')]", 2),
        ("[lastIndexOf('abcdef', 'AB')]", 0),
        ("[indexOf('abcdef', 'z')]", -1),
        ("[padLeft('123', 10, '0')]", "0000000123"),
        ("[replace('123-123-1234', '-', '')]", "1231231234"),
        ("[replace('123-123-1234', '1234', 'xxxx')]", "123-123-xxxx"),
        ("[skip('one two three', 4)]", "two three"),
        ("[split('one,two,three', ',')]", ["one", "two", "three"]),
        ("[split('one;two,three', createArray(',', ';'))]", ["one", "two", "three"]),
        (
            "[string(createObject('valueA', 10, 'valueB', 'Example Text'))]",
            '{"valueA":10,"valueB":"Example Text"}',
        ),
        ("[string(createArray('a', 'b', 'c'))]", '["a","b","c"]'),
        ("[string(5)]", "5"),
        ("[substring('one two three', 4, 3)]", "two"),
        ("[take('one two three', 2)]", "on"),
        ("[toLower('One Two Three')]", "one two three"),
        ("[toUpper('One Two Three')]", "ONE TWO THREE"),
        ("[trim('    one two three   ')]", "one two three"),
        ("[first('One Two Three')]", "O"),
        ("[last('One Two Three')]", "e"),
        ("[length('One Two Three')]", 13),
        ("[startsWith('abcdef', 'ab')]", True),
        ("[startsWith('abcdef', 'A')]", True),
        ("[startsWith('abcdef', 'e')]", False),
        ("[endsWith('abcdef', 'ef')]", True),
        ("[endsWith('abcdef', 'F')]", True),
        ("[endsWith('abcdef', 'e')]", False),
        ("[contains('OneTwoThree', 'e')]", True),
        ("[contains('OneTwoThree', 'z')]", False),
        ("[empty('')]", True),
        ("[uri('http://contoso.org/firstpath', 'myscript.sh')]", "http://contoso.org/myscript.sh"),
        ("[uri('http://contoso.org/firstpath/', 'myscript.sh')]", "http://contoso.org/firstpath/myscript.sh"),
        (
            "[uri('http://contoso.org/firstpath/azuredeploy.json', 'myscript.sh')]",
            "http://contoso.org/firstpath/myscript.sh",
        ),
        (
            "[uri('http://contoso.org/firstpath/azuredeploy.json/', 'myscript.sh')]",
            "http://contoso.org/firstpath/azuredeploy.json/myscript.sh",
        ),
        (
            "[uriComponent('http://contoso.com/resources/nested/azuredeploy.json')]",
            "http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json",
        ),
        (
            "[uriComponentToString('http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json')]",
            "http://contoso.com/resources/nested/azuredeploy.json",
        ),
    ],
)
def test_documented_examples(expression: str, expected: Json) -> None:
    assert ev(expression) == expected


def test_concat_strings_converts_numbers_and_booleans_as_dotnet_does() -> None:
    assert ev("[concat('storage', 1, true(), false())]") == "storage1TrueFalse"


def test_concat_ignores_null() -> None:
    assert ev("[concat('a', null(), 'b')]") == "ab"


def test_concat_refuses_to_mix_strings_and_arrays() -> None:
    text = "[concat('a', createArray(1))]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "expects its second parameter to be of type 'String'" in caught.value.message
    assert caught.value.position == text.index("createArray")


def test_string_of_booleans_and_null() -> None:
    assert ev("[string(true())]") == "True"
    assert ev("[string(null())]") == ""


def test_format_alignment_escapes_and_numeric_formats() -> None:
    assert ev("[format('{{{0,5}}}|{1,-3}|', 'ab', 'c')]") == "{   ab}|c  |"
    assert ev("[format('{0:D5} {0:X} {0:x4} {1:F1}', 255, 2)]") == "00255 FF 00ff 2.0"
    assert ev("[format('{0:000} {0:#,##0}', 1234)]") == "1234 1,234"
    assert ev("[format('{0}', true())]") == "True"


def test_format_with_a_missing_argument() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[format('{1}', 'a')]")
    assert "Index (zero based) must be greater than or equal to zero" in caught.value.message


def test_substring_out_of_range_reports_indexes_not_content() -> None:
    # docs: "The index and length parameters must refer to a location within the string. The
    # index parameter: '0', the length parameter: '11', the length of the string parameter: '10'."
    with pytest.raises(TemplateError) as caught:
        ev("[substring('1234567890', 0, 11)]")
    assert (
        "The index and length parameters must refer to a location within the string. The index parameter: "
        "'0', the length parameter: '11', the length of the string parameter: '10'"
    ) in caught.value.message


def test_substring_defaults_to_the_rest_of_the_string() -> None:
    assert ev("[substring('abcdef', 2)]") == "cdef"
    assert ev("[substring('abcdef')]") == "abcdef"


def test_pad_left_of_an_integer_and_longer_values() -> None:
    assert ev("[padLeft(7, 3, '0')]") == "007"
    assert ev("[padLeft('abcdef', 3)]") == "abcdef"


def test_pad_left_needs_a_single_character() -> None:
    with pytest.raises(TemplateError):
        ev("[padLeft('1', 3, 'ab')]")


def test_replace_is_case_sensitive() -> None:
    assert ev("[replace('aAa', 'a', 'b')]") == "bAb"


def test_split_keeps_empty_entries() -> None:
    assert ev("[split('a,,b', ',')]") == ["a", "", "b"]


def test_base64_of_non_ascii_text_round_trips() -> None:
    assert ev("[base64ToString(base64('héllo wörld'))]") == "héllo wörld"


def test_invalid_base64_is_an_error() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[base64ToString('not base64!')]")
    assert "not a valid base64 string" in caught.value.message


def test_data_uri_without_base64() -> None:
    assert ev("[dataUriToString('data:text/plain,Hello%20there')]") == "Hello there"


def test_uri_needs_an_absolute_base() -> None:
    with pytest.raises(TemplateError):
        ev("[uri('relative/path', 'x')]")


def test_new_guid_is_only_allowed_in_parameter_defaults() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[newGuid()]")
    assert "The template function 'newGuid' is not expected at this location." in caught.value.message


@pytest.mark.parametrize(
    "expression",
    [
        "[toLower(1)]",
        "[toUpper(createArray())]",
        "[trim(true())]",
        "[startsWith(1, 'a')]",
        "[uniqueString('a', 1)]",
    ],
)
def test_type_errors_name_the_expected_type(expression: str) -> None:
    with pytest.raises(TemplateError) as caught:
        ev(expression)
    assert "to be of type 'String'" in caught.value.message


@pytest.mark.parametrize(
    "expression", ["[toLower()]", "[toLower('a', 'b')]", "[guid()]", "[replace('a', 'b')]"]
)
def test_argument_counts_are_checked(expression: str) -> None:
    with pytest.raises(TemplateError) as caught:
        ev(expression)
    assert "function requires" in caught.value.message
