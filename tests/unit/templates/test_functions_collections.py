"""Array and object functions. "docs" values come from
learn.microsoft.com/azure/azure-resource-manager/templates/template-functions-array and -object."""

from __future__ import annotations

import pytest

from moorage.deployments.templates import Json, TemplateError
from tests.unit.templates.support import ev

FIRST_OBJECT = "createObject('one', 'a', 'two', 'b', 'three', 'c')"
SECOND_OBJECT = "createObject('one', 'a', 'two', 'z', 'three', 'c')"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # docs
        (
            "[concat(createArray('1-1', '1-2', '1-3'), createArray('2-1', '2-2', '2-3'))]",
            ["1-1", "1-2", "1-3", "2-1", "2-2", "2-3"],
        ),
        (f"[contains({FIRST_OBJECT}, 'one')]", True),
        (f"[contains({FIRST_OBJECT}, 'a')]", False),
        ("[contains(createArray('one', 'two', 'three'), 'three')]", True),
        ("[contains(createArray('one', 'two', 'three'), 'four')]", False),
        ("[empty(createArray())]", True),
        ("[empty(createObject())]", True),
        ("[first(createArray('one', 'two', 'three'))]", "one"),
        ("[last(createArray('one', 'two', 'three'))]", "three"),
        ("[length(createArray('one', 'two', 'three'))]", 3),
        (
            "[length(createObject('propA', 'one', 'propB', 'two', 'propC', 'three', 'propD', "
            "createObject()))]",
            4,
        ),
        (f"[intersection({FIRST_OBJECT}, {SECOND_OBJECT})]", {"one": "a", "three": "c"}),
        ("[intersection(createArray('one', 'two', 'three'), createArray('two', 'three'))]", ["two", "three"]),
        (
            "[union(createObject('one', 'a', 'two', 'b', 'three', 'c1'), createObject('three', 'c2', "
            "'four', 'd', 'five', 'e'))]",
            {"one": "a", "two": "b", "three": "c2", "four": "d", "five": "e"},
        ),
        (
            "[union(createArray('one', 'two', 'three'), createArray('three', 'four'))]",
            ["one", "two", "three", "four"],
        ),
        ("[range(1, 3)]", [1, 2, 3]),
        ("[min(createArray(0, 3, 2, 5, 4))]", 0),
        ("[max(createArray(0, 3, 2, 5, 4))]", 5),
        ("[min(0, 3, 2, 5, 4)]", 0),
        ("[max(0, 3, 2, 5, 4)]", 5),
        ("[skip(createArray('one', 'two', 'three'), 2)]", ["three"]),
        ("[take(createArray('one', 'two', 'three'), 2)]", ["one", "two"]),
        ('[json(\'{"a": "b"}\').a]', "b"),
        ("[json('null')]", None),
        ("[json('[1, true, \"x\"]')]", [1, True, "x"]),
        ("[array('efgh')]", ["efgh"]),
        ("[array(createArray(1))]", [1]),
        ("[createArray(1, 'a', true())]", [1, "a", True]),
        (
            "[flatten(createArray(createArray('one', 'two'), createArray('three'), createArray('four', "
            "'five')))]",
            ["one", "two", "three", "four", "five"],
        ),
        ("[objectKeys(createObject('a', 1, 'b', 2))]", ["a", "b"]),
        ("[coalesce(null(), null(), 1, 2)]", 1),
        ("[coalesce(null())]", None),
        ("[indexOf(createArray('a', 'b', 'c'), 'b')]", 1),
        ("[lastIndexOf(createArray('a', 'b', 'a'), 'a')]", 2),
        ("[indexOf(createArray('a'), 'A')]", -1),
    ],
)
def test_documented_and_basic_behaviour(expression: str, expected: Json) -> None:
    assert ev(expression) == expected


def test_items_sorts_by_key_and_gives_key_value_pairs() -> None:
    value = ev("[items(createObject('item002', createObject('n', 2), 'item001', createObject('n', 1)))]")
    assert value == [{"key": "item001", "value": {"n": 1}}, {"key": "item002", "value": {"n": 2}}]


def test_union_merges_nested_objects() -> None:
    value = ev(
        "[union(createObject('a', createObject('x', 1, 'y', 1)), createObject('a', createObject('y', 2)))]"
    )
    assert value == {"a": {"x": 1, "y": 2}}


def test_union_of_arrays_removes_duplicates_by_value() -> None:
    assert ev("[union(createArray(createObject('a', 1)), createArray(createObject('a', 1), 2))]") == [
        {"a": 1},
        2,
    ]


def test_contains_object_key_ignores_case_but_string_does_not() -> None:
    assert ev("[contains(createObject('Key', 1), 'kEY')]") is True
    assert ev("[contains('abc', 'B')]") is False


def test_first_and_last_of_empty_array_are_null() -> None:
    assert ev("[first(createArray())]") is None
    assert ev("[last(createArray())]") is None


def test_empty_of_null() -> None:
    assert ev("[empty(null())]") is True


def test_skip_and_take_clamp_their_count() -> None:
    assert ev("[skip(createArray(1, 2), 5)]") == []
    assert ev("[take(createArray(1, 2), -1)]") == []
    assert ev("[skip('abc', -2)]") == "abc"


def test_create_object_needs_pairs() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[createObject('a')]")
    assert "even number of arguments" in caught.value.message


def test_range_limits() -> None:
    with pytest.raises(TemplateError):
        ev("[range(0, 10001)]")
    with pytest.raises(TemplateError):
        ev("[range(2147483647, 1)]")


def test_min_of_empty_array_is_an_error() -> None:
    with pytest.raises(TemplateError):
        ev("[min(createArray())]")


def test_json_accepts_jsonnet_leniency() -> None:
    assert ev("[json('{''a'': ''b'', c: [1, 2,], /* note */ \"d\": null}')]") == {
        "a": "b",
        "c": [1, 2],
        "d": None,
    }


def test_json_rejects_garbage_without_echoing_it() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[json('{nope')]")
    assert "the provided string is not valid JSON (expected ':' at position 5)" in caught.value.message


def test_try_get_returns_null_for_missing_keys() -> None:
    assert ev("[tryGet(createObject('a', createObject('b', 1)), 'a', 'b')]") == 1
    assert ev("[tryGet(createObject('a', 1), 'z')]") is None
    assert ev("[tryGet(createArray(1, 2), 5)]") is None


def test_shallow_merge() -> None:
    value = ev(
        "[shallowMerge(createArray(createObject('a', 1, 'n', createObject('x', 1)), createObject('n', 2)))]"
    )
    assert value == {"a": 1, "n": 2}


def test_flatten_requires_arrays() -> None:
    with pytest.raises(TemplateError):
        ev("[flatten(createArray(1, 2))]")


def test_length_of_a_number_is_a_type_error() -> None:
    text = "[length(5)]"
    with pytest.raises(TemplateError) as caught:
        ev(text)
    assert "expects its first parameter to be of type 'Array'" in caught.value.message
    assert caught.value.position == text.index("5")
