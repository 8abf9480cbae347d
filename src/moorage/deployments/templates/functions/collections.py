"""Array and object functions (template-functions-array / -object), and the ones shared with
strings (``concat``, ``contains``, ``empty``, ``first``, ``last``, ``length``, ``skip``,
``take``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moorage.deployments.templates.function_registry import (
    array_arg,
    function,
    int_arg,
    object_arg,
    special,
    string_arg,
    type_error,
)
from moorage.deployments.templates.functions.strings import parse_json_text
from moorage.deployments.templates.values import Json, as_text, deep_equal, find_key, is_int

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import Invocation

#: ARM's limits on ``range()``.
MAX_RANGE_COUNT = 10000
MAX_RANGE_END = 2147483647


@function("array", min_args=1, max_args=1)
def _array(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    return value if isinstance(value, list) else [value]


@function("createArray")
def _create_array(inv: Invocation, args: list[Json]) -> Json:
    return list(args)


@function("createObject")
def _create_object(inv: Invocation, args: list[Json]) -> Json:
    if len(args) % 2:
        raise inv.fail("the function requires an even number of arguments: pairs of property name and value")
    result: dict[str, Json] = {}
    for i in range(0, len(args), 2):
        result[string_arg(inv, args, i)] = args[i + 1]
    return result


@function("concat", min_args=1)
def _concat(inv: Invocation, args: list[Json]) -> Json:
    present = [a for a in args if a is not None]
    if present and isinstance(present[0], list):
        merged: list[Json] = []
        for i, value in enumerate(args):
            if value is None:
                continue
            if not isinstance(value, list):
                raise type_error(inv, i, "Array", value)
            merged.extend(value)
        return merged
    parts: list[str] = []
    for i, value in enumerate(args):
        if isinstance(value, (list, dict)):
            raise type_error(inv, i, "String", value)
        parts.append(as_text(value))
    return "".join(parts)


@function("contains", min_args=2, max_args=2)
def _contains(inv: Invocation, args: list[Json]) -> Json:
    container, item = args
    if isinstance(container, str):
        return as_text(item) in container
    if isinstance(container, list):
        return any(deep_equal(element, item) for element in container)
    if isinstance(container, dict):
        return find_key(container, as_text(item)) is not None
    raise type_error(inv, 0, "Array", container)


@function("empty", min_args=1, max_args=1)
def _empty(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if value is None:
        return True
    if isinstance(value, (str, list, dict)):
        return len(value) == 0
    raise type_error(inv, 0, "Array", value)


@function("first", min_args=1, max_args=1)
def _first(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if isinstance(value, str):
        return value[:1]
    if isinstance(value, list):
        return value[0] if value else None
    if value is None:
        return None
    raise type_error(inv, 0, "Array", value)


@function("last", min_args=1, max_args=1)
def _last(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if isinstance(value, str):
        return value[-1:]
    if isinstance(value, list):
        return value[-1] if value else None
    if value is None:
        return None
    raise type_error(inv, 0, "Array", value)


@function("length", min_args=1, max_args=1)
def _length(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise type_error(inv, 0, "Array", value)


def _skip_take(inv: Invocation, args: list[Json], *, skip: bool) -> Json:
    value = args[0]
    count = max(int_arg(inv, args, 1), 0)
    if isinstance(value, str):
        return value[count:] if skip else value[:count]
    if isinstance(value, list):
        return value[count:] if skip else value[:count]
    raise type_error(inv, 0, "Array", value)


@function("skip", min_args=2, max_args=2)
def _skip(inv: Invocation, args: list[Json]) -> Json:
    return _skip_take(inv, args, skip=True)


@function("take", min_args=2, max_args=2)
def _take(inv: Invocation, args: list[Json]) -> Json:
    return _skip_take(inv, args, skip=False)


@function("flatten", min_args=1, max_args=1)
def _flatten(inv: Invocation, args: list[Json]) -> Json:
    result: list[Json] = []
    for element in array_arg(inv, args, 0):
        if not isinstance(element, list):
            raise inv.fail("every element of the array must be an array")
        result.extend(element)
    return result


def _merge(left: dict[str, Json], right: dict[str, Json]) -> dict[str, Json]:
    """ARM's union of two objects: later values win; nested objects are merged recursively."""
    merged = dict(left)
    for key, value in right.items():
        existing = find_key(merged, key)
        if existing is None:
            merged[key] = value
            continue
        current = merged[existing]
        if isinstance(current, dict) and isinstance(value, dict):
            merged[existing] = _merge(current, value)
        else:
            del merged[existing]
            merged[key] = value
    return merged


@function("union", min_args=1)
def _union(inv: Invocation, args: list[Json]) -> Json:
    if isinstance(args[0], dict):
        result: dict[str, Json] = {}
        for i in range(len(args)):
            result = _merge(result, object_arg(inv, args, i))
        return result
    items: list[Json] = []
    for i in range(len(args)):
        for element in array_arg(inv, args, i):
            if not any(deep_equal(element, kept) for kept in items):
                items.append(element)
    return items


def _has_equal(obj: dict[str, Json], key: str, value: Json) -> bool:
    found = find_key(obj, key)
    return found is not None and deep_equal(obj[found], value)


@function("intersection", min_args=2)
def _intersection(inv: Invocation, args: list[Json]) -> Json:
    if isinstance(args[0], dict):
        objects = [object_arg(inv, args, i) for i in range(len(args))]
        return {
            key: value
            for key, value in objects[0].items()
            if all(_has_equal(other, key, value) for other in objects[1:])
        }
    arrays = [array_arg(inv, args, i) for i in range(len(args))]
    items: list[Json] = []
    for element in arrays[0]:
        in_all = all(any(deep_equal(element, other) for other in array) for array in arrays[1:])
        if in_all and not any(deep_equal(element, kept) for kept in items):
            items.append(element)
    return items


@function("items", min_args=1, max_args=1)
def _items(inv: Invocation, args: list[Json]) -> Json:
    obj = object_arg(inv, args, 0)
    return [{"key": key, "value": obj[key]} for key in sorted(obj)]


@function("objectKeys", min_args=1, max_args=1)
def _object_keys(inv: Invocation, args: list[Json]) -> Json:
    return list(object_arg(inv, args, 0))


@function("shallowMerge", min_args=1, max_args=1)
def _shallow_merge(inv: Invocation, args: list[Json]) -> Json:
    result: dict[str, Json] = {}
    for element in array_arg(inv, args, 0):
        if not isinstance(element, dict):
            raise inv.fail("every element of the array must be an object")
        for key, value in element.items():
            existing = find_key(result, key)
            if existing is not None:
                del result[existing]
            result[key] = value
    return result


@function("json", min_args=1, max_args=1)
def _json(inv: Invocation, args: list[Json]) -> Json:
    return parse_json_text(inv, string_arg(inv, args, 0))


@function("null", max_args=0)
def _null(inv: Invocation, args: list[Json]) -> Json:
    return None


@function("range", min_args=2, max_args=2)
def _range(inv: Invocation, args: list[Json]) -> Json:
    start, count = int_arg(inv, args, 0), int_arg(inv, args, 1)
    if count < 0 or count > MAX_RANGE_COUNT:
        raise inv.fail(f"the count must be between 0 and {MAX_RANGE_COUNT}")
    if start + count > MAX_RANGE_END:
        raise inv.fail(f"the sum of the start index and the count must not exceed {MAX_RANGE_END}")
    return list(range(start, start + count))


def _numbers(inv: Invocation, args: list[Json]) -> list[int | float]:
    values: list[Json] = args
    if len(args) == 1 and isinstance(args[0], list):
        values = args[0]
    if not values:
        raise inv.fail("the array must not be empty")
    numbers: list[int | float] = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise type_error(inv, min(i, len(args) - 1), "Integer", value)
        numbers.append(value)
    return numbers


@function("min", min_args=1)
def _min(inv: Invocation, args: list[Json]) -> Json:
    return min(_numbers(inv, args))


@function("max", min_args=1)
def _max(inv: Invocation, args: list[Json]) -> Json:
    return max(_numbers(inv, args))


@special("coalesce", min_args=1)
def _coalesce(inv: Invocation) -> Json:
    for i in range(inv.arg_count):
        value = inv.arg(i)
        if value is not None:
            return value
    return None


@function("tryGet", min_args=2)
def _try_get(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    for key in args[1:]:
        if isinstance(value, dict) and isinstance(key, str):
            found = find_key(value, key)
            value = value[found] if found is not None else None
        elif isinstance(value, list) and is_int(key) and isinstance(key, int):
            value = value[key] if 0 <= key < len(value) else None
        else:
            return None
    return value
