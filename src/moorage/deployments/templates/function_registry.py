"""The table of built-in functions and the argument checks they share.

Names are registered case-folded (ARM matches function names without regard to case). Two kinds
of implementation: :func:`function` gets its arguments evaluated; :func:`special` gets the
:class:`~moorage.deployments.templates.evaluator.Invocation` and evaluates what it needs (``if``,
``and``, ``coalesce``, the lambda functions...). Both check the argument count first, with ARM's
message. Type errors name the argument by its ordinal and point at its position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from moorage.deployments.templates.errors import FUNCTIONS_HELP, ExpressionError
from moorage.deployments.templates.values import Json, is_int, type_name

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import FunctionImpl, Invocation

REGISTRY: dict[str, FunctionImpl] = {}


class Fallbacks:
    """Handlers for calls not in :data:`REGISTRY`: ``ns.name(...)`` (user-defined functions) and
    ``list*(...)``; set by the modules that implement them."""

    user_function: FunctionImpl | None = None
    list_function: FunctionImpl | None = None


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def ordinal(index: int) -> str:
    return _ORDINALS[index] if index < len(_ORDINALS) else f"{index + 1}th"


def check_arity(inv: Invocation, min_args: int, max_args: int | None) -> None:
    count = inv.arg_count
    if count >= min_args and (max_args is None or count <= max_args):
        return
    if max_args is None:
        wanted = f"at least {min_args} argument(s)"
    elif min_args == max_args:
        wanted = f"{min_args} argument(s)"
    else:
        wanted = f"between {min_args} and {max_args} argument(s)"
    raise inv.fail(f"function requires {wanted} while {count} were provided")


def special(
    name: str, *, min_args: int = 0, max_args: int | None = None
) -> Callable[[Callable[[Invocation], Json]], Callable[[Invocation], Json]]:
    """Register ``impl(invocation)``; it evaluates its own arguments."""

    def register(impl: Callable[[Invocation], Json]) -> Callable[[Invocation], Json]:
        def checked(inv: Invocation) -> Json:
            check_arity(inv, min_args, max_args)
            return impl(inv)

        REGISTRY[name.casefold()] = checked
        return impl

    return register


def function(
    name: str, *, min_args: int = 0, max_args: int | None = None
) -> Callable[[Callable[[Invocation, list[Json]], Json]], Callable[[Invocation, list[Json]], Json]]:
    """Register ``impl(invocation, evaluated_arguments)``."""

    def register(impl: Callable[[Invocation, list[Json]], Json]) -> Callable[[Invocation, list[Json]], Json]:
        def checked(inv: Invocation) -> Json:
            check_arity(inv, min_args, max_args)
            return impl(inv, inv.args())

        REGISTRY[name.casefold()] = checked
        return impl

    return register


def type_error(inv: Invocation, index: int, expected: str, value: Json) -> ExpressionError:
    at = inv.call.args[index].pos if index < inv.arg_count else inv.call.pos
    return inv.error(
        f"The template language function '{inv.name}' expects its {ordinal(index)} parameter to be of type "
        f"'{expected}'. The provided value is of type '{type_name(value)}'. Please see "
        f"{FUNCTIONS_HELP}#{inv.call.name.lower()} for usage details.",
        at=at,
    )


def string_arg(inv: Invocation, args: list[Json], index: int) -> str:
    value = args[index]
    if not isinstance(value, str):
        raise type_error(inv, index, "String", value)
    return value


def int_arg(inv: Invocation, args: list[Json], index: int) -> int:
    value = args[index]
    if not is_int(value) or not isinstance(value, int):
        raise type_error(inv, index, "Integer", value)
    return value


def bool_arg(inv: Invocation, args: list[Json], index: int) -> bool:
    value = args[index]
    if not isinstance(value, bool):
        raise type_error(inv, index, "Boolean", value)
    return value


def array_arg(inv: Invocation, args: list[Json], index: int) -> list[Json]:
    value = args[index]
    if not isinstance(value, list):
        raise type_error(inv, index, "Array", value)
    return value


def object_arg(inv: Invocation, args: list[Json], index: int) -> dict[str, Json]:
    value = args[index]
    if not isinstance(value, dict):
        raise type_error(inv, index, "Object", value)
    return value


def all_strings(inv: Invocation, args: list[Json]) -> list[str]:
    return [string_arg(inv, args, i) for i in range(len(args))]
