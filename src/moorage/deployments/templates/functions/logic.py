"""Comparison, logical and numeric functions.

``if``, ``and`` and ``or`` evaluate lazily: ``if`` only the branch it returns, ``and``/``or`` up to
the first argument that decides the result (so ``and(not(empty(x)), equals(x[0], 'a'))`` is safe).
Numeric functions work on 64-bit integers; ``div`` and ``mod`` truncate toward zero as .NET does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moorage.deployments.templates.function_registry import (
    bool_arg,
    function,
    int_arg,
    special,
    type_error,
)
from moorage.deployments.templates.values import Json, deep_equal, is_int, type_name

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import Invocation


@function("equals", min_args=2, max_args=2)
def _equals(inv: Invocation, args: list[Json]) -> Json:
    return deep_equal(args[0], args[1])


def _ordered(inv: Invocation, args: list[Json]) -> tuple[int | float | str, int | float | str]:
    left, right = args
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if numbers and isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left, right
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    raise inv.fail(
        f"the parameters must both be integers or both be strings; they are of type '{type_name(left)}' and "
        f"'{type_name(right)}'"
    )


@function("less", min_args=2, max_args=2)
def _less(inv: Invocation, args: list[Json]) -> Json:
    left, right = _ordered(inv, args)
    return left < right  # type: ignore[operator]  # same type, checked by _ordered


@function("lessOrEquals", min_args=2, max_args=2)
def _less_or_equals(inv: Invocation, args: list[Json]) -> Json:
    left, right = _ordered(inv, args)
    return left <= right  # type: ignore[operator]  # same type, checked by _ordered


@function("greater", min_args=2, max_args=2)
def _greater(inv: Invocation, args: list[Json]) -> Json:
    left, right = _ordered(inv, args)
    return left > right  # type: ignore[operator]  # same type, checked by _ordered


@function("greaterOrEquals", min_args=2, max_args=2)
def _greater_or_equals(inv: Invocation, args: list[Json]) -> Json:
    left, right = _ordered(inv, args)
    return left >= right  # type: ignore[operator]  # same type, checked by _ordered


def _lazy_bool(inv: Invocation, index: int) -> bool:
    value = inv.arg(index)
    if not isinstance(value, bool):
        raise type_error(inv, index, "Boolean", value)
    return value


@special("and", min_args=2)
def _and(inv: Invocation) -> Json:
    return all(_lazy_bool(inv, i) for i in range(inv.arg_count))


@special("or", min_args=2)
def _or(inv: Invocation) -> Json:
    return any(_lazy_bool(inv, i) for i in range(inv.arg_count))


@function("not", min_args=1, max_args=1)
def _not(inv: Invocation, args: list[Json]) -> Json:
    return not bool_arg(inv, args, 0)


@special("if", min_args=3, max_args=3)
def _if(inv: Invocation) -> Json:
    return inv.arg(1) if _lazy_bool(inv, 0) else inv.arg(2)


@function("true", max_args=0)
def _true(inv: Invocation, args: list[Json]) -> Json:
    return True


@function("false", max_args=0)
def _false(inv: Invocation, args: list[Json]) -> Json:
    return False


@function("bool", min_args=1, max_args=1)
def _bool(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if isinstance(value, bool):
        return value
    if is_int(value):
        return value != 0
    if isinstance(value, str) and value.strip().casefold() in ("true", "false"):
        return value.strip().casefold() == "true"
    raise inv.fail("the value can't be converted to a boolean: it must be 'true', 'false' or an integer")


@function("int", min_args=1, max_args=1)
def _int(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if isinstance(value, bool):
        raise type_error(inv, 0, "Integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise inv.fail("the string can't be converted to an integer") from None
    raise type_error(inv, 0, "Integer", value)


@function("float", min_args=1, max_args=1)
def _float(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if isinstance(value, bool):
        raise type_error(inv, 0, "Float", value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise inv.fail("the string can't be converted to a floating point number") from None
    raise type_error(inv, 0, "Float", value)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _checked(inv: Invocation, value: int) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise inv.fail("the result is outside the range of a 64-bit integer")
    return value


@function("add", min_args=2, max_args=2)
def _add(inv: Invocation, args: list[Json]) -> Json:
    return _checked(inv, int_arg(inv, args, 0) + int_arg(inv, args, 1))


@function("sub", min_args=2, max_args=2)
def _sub(inv: Invocation, args: list[Json]) -> Json:
    return _checked(inv, int_arg(inv, args, 0) - int_arg(inv, args, 1))


@function("mul", min_args=2, max_args=2)
def _mul(inv: Invocation, args: list[Json]) -> Json:
    return _checked(inv, int_arg(inv, args, 0) * int_arg(inv, args, 1))


def _divisor(inv: Invocation, args: list[Json]) -> tuple[int, int]:
    dividend, divisor = int_arg(inv, args, 0), int_arg(inv, args, 1)
    if divisor == 0:
        raise inv.fail("the divisor must not be zero")
    return dividend, divisor


@function("div", min_args=2, max_args=2)
def _div(inv: Invocation, args: list[Json]) -> Json:
    dividend, divisor = _divisor(inv, args)
    quotient = abs(dividend) // abs(divisor)
    return quotient if (dividend < 0) == (divisor < 0) else -quotient


@function("mod", min_args=2, max_args=2)
def _mod(inv: Invocation, args: list[Json]) -> Json:
    dividend, divisor = _divisor(inv, args)
    remainder = abs(dividend) % abs(divisor)
    return -remainder if dividend < 0 else remainder
