"""Template values compiled once: JSON trees whose expression strings are already parsed.

:func:`compile_value` turns a raw JSON value from a template into a :data:`Node` tree. Subtrees
without expressions stay raw (:class:`Const`), so large literal property bags cost nothing to
evaluate. Syntax errors in expressions surface here, at template parse time, with their JSON path.

Inside resource ``properties`` and variable values, an object member named ``copy`` holding
``[{"name", "count", "input"}]`` is a property loop (:class:`PropertyLoop`): evaluation replaces it
with one array member per loop, as ARM does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from moorage.deployments.templates.errors import ExpressionError, TemplateError, validation_failed
from moorage.deployments.templates.expressions import ParsedExpression, parse_string_value
from moorage.deployments.templates.values import Json


@dataclass(frozen=True)
class Const:
    """A literal subtree (``[[`` escapes already resolved)."""

    value: Json
    path: str


@dataclass(frozen=True)
class Expr:
    """A JSON string holding an expression."""

    parsed: ParsedExpression
    path: str


@dataclass(frozen=True)
class PropertyLoop:
    """``{"name": ..., "count": ..., "input": ...}`` inside a ``copy`` member."""

    name: str
    count: Node
    input: Node
    path: str


@dataclass(frozen=True)
class ObjectNode:
    """An object with at least one expression (in a key or below a value), or a property loop."""

    entries: tuple[tuple[str | Expr, Node], ...]
    loops: tuple[PropertyLoop, ...]
    path: str


@dataclass(frozen=True)
class ArrayNode:
    items: tuple[Node, ...]
    path: str


Node: TypeAlias = Const | Expr | ObjectNode | ArrayNode


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def compile_value(raw: object, path: str, *, property_loops: bool = False) -> Node:
    """Compile a raw JSON value found at ``path``.

    Raises :class:`TemplateError` for an expression that does not parse (with the position of
    the fault), a malformed property loop, or a value that is not JSON.
    """
    if isinstance(raw, str):
        try:
            classified = parse_string_value(raw)
        except ExpressionError as exc:
            raise TemplateError(
                validation_failed(
                    f"The template language expression at path '{path}' is not valid: {exc.message}"
                ),
                path=path,
                position=exc.position,
            ) from exc
        if isinstance(classified, ParsedExpression):
            return Expr(classified, path)
        return Const(classified, path)
    if raw is None or isinstance(raw, (bool, int, float)):
        return Const(raw, path)
    if isinstance(raw, list):
        items = tuple(
            compile_value(item, child_path(path, i), property_loops=property_loops)
            for i, item in enumerate(raw)
        )
        if all(isinstance(item, Const) for item in items):
            return Const([item.value for item in items if isinstance(item, Const)], path)
        return ArrayNode(items, path)
    if isinstance(raw, dict):
        entries: list[tuple[str | Expr, Node]] = []
        loops: tuple[PropertyLoop, ...] = ()
        for key, value in raw.items():
            if not isinstance(key, str):
                raise TemplateError(
                    validation_failed(f"The property name at path '{path}' is not a string."), path=path
                )
            member_path = child_path(path, key)
            if (
                property_loops
                and key.casefold() == "copy"
                and isinstance(value, list)
                and _looks_like_loops(value)
            ):
                loops = _compile_loops(value, member_path)
                continue
            key_node = compile_value(key, member_path)
            compiled_key: str | Expr = key_node if isinstance(key_node, Expr) else str(_const(key_node))
            entries.append((compiled_key, compile_value(value, member_path, property_loops=property_loops)))
        if not loops and all(isinstance(k, str) and isinstance(v, Const) for k, v in entries):
            return Const({str(k): _const(v) for k, v in entries}, path)
        return ObjectNode(tuple(entries), loops, path)
    raise TemplateError(
        validation_failed(f"The value at path '{path}' is not a JSON value ({type(raw).__name__})."),
        path=path,
    )


def _const(node: Node) -> Json:
    return node.value if isinstance(node, Const) else None


def _looks_like_loops(value: list[Any]) -> bool:
    return bool(value) and all(
        isinstance(item, dict) and any(str(k).casefold() == "input" for k in item) for item in value
    )


def _compile_loops(value: list[Any], path: str) -> tuple[PropertyLoop, ...]:
    loops: list[PropertyLoop] = []
    for i, item in enumerate(value):
        loop_path = child_path(path, i)
        fields = {k.casefold(): v for k, v in item.items()}
        unknown = set(fields) - {"name", "count", "input"}
        name = fields.get("name")
        if unknown or not isinstance(name, str) or not name or "count" not in fields:
            raise TemplateError(
                validation_failed(
                    f"The property copy loop at path '{loop_path}' is not valid: it must have exactly the "
                    "properties 'name' (a non-empty string), 'count' and 'input'."
                ),
                path=loop_path,
            )
        loops.append(
            PropertyLoop(
                name,
                compile_value(fields["count"], child_path(loop_path, "count")),
                compile_value(fields["input"], child_path(loop_path, "input"), property_loops=True),
                loop_path,
            )
        )
    return tuple(loops)


def expressions_in(node: Node) -> Iterator[Expr]:
    """Every expression in ``node`` (keys, values and loops), depth first."""
    if isinstance(node, Expr):
        yield node
    elif isinstance(node, ArrayNode):
        for item in node.items:
            yield from expressions_in(item)
    elif isinstance(node, ObjectNode):
        for key, value in node.entries:
            if isinstance(key, Expr):
                yield key
            yield from expressions_in(value)
        for loop in node.loops:
            yield from expressions_in(loop.count)
            yield from expressions_in(loop.input)
