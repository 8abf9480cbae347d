"""Lambda functions: ``filter``, ``map``, ``reduce``, ``sort``, ``toObject``, ``mapValues``,
``groupBy``, with ``lambda('x', body)`` arguments and ``lambdaVariables('x')`` inside them.

A ``lambda(...)`` is only valid as the argument of one of these functions: it is never a value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moorage.deployments.templates.expressions import Call, Expression, StringLiteral
from moorage.deployments.templates.function_registry import function, special, string_arg, type_error
from moorage.deployments.templates.values import Json, as_text, type_name

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import Invocation


class _Lambda:
    def __init__(self, inv: Invocation, index: int, arity: int) -> None:
        node = inv.call.args[index]
        if not (isinstance(node, Call) and node.key == "lambda" and node.namespace is None):
            raise inv.error(
                f"The template language function '{inv.name}' expects its argument {index + 1} to be a "
                "lambda function: lambda('name', expression).",
                at=node.pos,
            )
        names = node.args[:-1]
        if len(node.args) < 2 or len(names) != arity or not all(isinstance(n, StringLiteral) for n in names):
            raise inv.error(
                f"The lambda function given to '{inv.name}' must declare {arity} variable name(s) as "
                "string literals, followed by its expression.",
                at=node.pos,
            )
        self.inv = inv
        self.names = [n.value for n in names if isinstance(n, StringLiteral)]
        self.body: Expression = node.args[-1]

    def __call__(self, *values: Json) -> Json:
        scope = self.inv.scope.with_lambda(dict(zip(self.names, values, strict=True)))
        return self.inv.evaluate(self.body, scope)


def _array(inv: Invocation, index: int) -> list[Json]:
    value = inv.arg(index)
    if not isinstance(value, list):
        raise type_error(inv, index, "Array", value)
    return value


@special("lambda", min_args=1)
def _lambda(inv: Invocation) -> Json:
    raise inv.not_expected("A lambda function can only be an argument of a lambda-accepting function.")


@function("lambdaVariables", min_args=1, max_args=1)
def _lambda_variables(inv: Invocation, args: list[Json]) -> Json:
    name = string_arg(inv, args, 0)
    variables = inv.scope.lambda_variables
    if name.casefold() not in variables:
        raise inv.error(f"The lambda variable '{name}' is not defined at this location.")
    return variables[name.casefold()]


@special("filter", min_args=2, max_args=2)
def _filter(inv: Invocation) -> Json:
    items, predicate = _array(inv, 0), _Lambda(inv, 1, 1)
    kept: list[Json] = []
    for item in items:
        verdict = predicate(item)
        if not isinstance(verdict, bool):
            raise inv.fail(f"the lambda function must return a boolean; it returned a '{type_name(verdict)}'")
        if verdict:
            kept.append(item)
    return kept


@special("map", min_args=2, max_args=2)
def _map(inv: Invocation) -> Json:
    items, mapper = _array(inv, 0), _Lambda(inv, 1, 1)
    return [mapper(item) for item in items]


@special("reduce", min_args=3, max_args=3)
def _reduce(inv: Invocation) -> Json:
    items, accumulator, reducer = _array(inv, 0), inv.arg(1), _Lambda(inv, 2, 2)
    for item in items:
        accumulator = reducer(accumulator, item)
    return accumulator


@special("sort", min_args=2, max_args=2)
def _sort(inv: Invocation) -> Json:
    items, before = _array(inv, 0), _Lambda(inv, 1, 2)
    result: list[Json] = []
    for item in items:  # insertion sort: stable, and the lambda only answers "a before b?"
        position = len(result)
        while position > 0:
            verdict = before(item, result[position - 1])
            if not isinstance(verdict, bool):
                raise inv.fail("the lambda function must return a boolean")
            if not verdict:
                break
            position -= 1
        result.insert(position, item)
    return result


@special("toObject", min_args=2, max_args=3)
def _to_object(inv: Invocation) -> Json:
    items, key_of = _array(inv, 0), _Lambda(inv, 1, 1)
    value_of = _Lambda(inv, 2, 1) if inv.arg_count > 2 else None
    result: dict[str, Json] = {}
    for item in items:
        key = key_of(item)
        if not isinstance(key, str):
            raise inv.fail(f"the key lambda function must return a string; it returned a '{type_name(key)}'")
        result[key] = value_of(item) if value_of else item
    return result


@special("mapValues", min_args=2, max_args=2)
def _map_values(inv: Invocation) -> Json:
    obj = inv.arg(0)
    if not isinstance(obj, dict):
        raise type_error(inv, 0, "Object", obj)
    mapper = _Lambda(inv, 1, 1)
    return {key: mapper(value) for key, value in obj.items()}


@special("groupBy", min_args=2, max_args=2)
def _group_by(inv: Invocation) -> Json:
    items, key_of = _array(inv, 0), _Lambda(inv, 1, 1)
    groups: dict[str, Json] = {}
    for item in items:
        key = as_text(key_of(item))
        bucket = groups.setdefault(key, [])
        if isinstance(bucket, list):
            bucket.append(item)
    return groups
