"""Json.NET-lenient bodies (what ``az deployment group create`` sends) become strict JSON."""

from __future__ import annotations

import json

import pytest

from moorage.arm.resources.base import parse_json_body
from moorage.core.errors import InvalidArgument
from moorage.core.jsonc import to_strict_json


def loads(text: str) -> object:
    return json.loads(to_strict_json(text))


def test_unquoted_keys_are_quoted() -> None:
    assert loads('{"properties": {template: {"a": 1}, mode: "Incremental"}}') == {
        "properties": {"template": {"a": 1}, "mode": "Incremental"}
    }


def test_comments_are_removed_but_not_inside_strings() -> None:
    text = '{\n // line\n "a": "x // not a comment", /* block */ "b": "/* kept */"\n}'
    assert loads(text) == {"a": "x // not a comment", "b": "/* kept */"}


def test_trailing_commas_are_dropped() -> None:
    assert loads('{"a": [1, 2, ], "b": {"c": 3, /* c */ }, }') == {"a": [1, 2], "b": {"c": 3}}


def test_single_quoted_strings() -> None:
    assert loads("{'key': 'value'}") == {"key": "value"}
    assert loads("{'a': 'say \"hi\"', 'b': 'it\\'s'}") == {"a": 'say "hi"', "b": "it's"}


def test_literals_and_numbers_are_untouched() -> None:
    assert loads('{"t": true, "f": false, "n": null, "e": 1e5, x: -2.5}') == {
        "t": True,
        "f": False,
        "n": None,
        "e": 1e5,
        "x": -2.5,
    }


def test_expressions_inside_strings_keep_their_quotes() -> None:
    text = "{v: \"[concat('a', 'b')]\"}"
    assert loads(text) == {"v": "[concat('a', 'b')]"}


def test_lenient_parsing_only_when_asked() -> None:
    body = b'{properties: {mode: "Incremental"}}'
    assert parse_json_body(body, lenient=True) == {"properties": {"mode": "Incremental"}}
    with pytest.raises(InvalidArgument) as info:
        parse_json_body(body)
    assert info.value.code == "InvalidRequestContent"


def test_malformed_lenient_body_is_invalid_request_content() -> None:
    for body in (b'{"a": ', b"{a b}", b"/* open"):
        with pytest.raises(InvalidArgument) as info:
            parse_json_body(body, lenient=True)
        assert info.value.code == "InvalidRequestContent"
