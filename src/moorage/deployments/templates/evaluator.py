"""Evaluation of compiled template values.

A :class:`Scope` says what an expression may see and do at the place it is written: the bound
parameters, the variables, the copy loop indices, the lambda variables, whether runtime functions
(``reference``, ``list*``) and the nondeterministic ones (``utcNow``, ``newGuid``) are allowed, and
the :class:`~moorage.deployments.templates.runtime.Resolver` for runtime values.
:func:`evaluate_node` walks a :data:`~moorage.deployments.templates.nodes.Node` tree and returns
plain JSON.

Faults raise :class:`~moorage.deployments.templates.errors.ExpressionError` (the inner message and
the position of the failing call); the caller that knows the place (a resource, an output...)
wraps it with :func:`wrap_error`. A runtime function without an answer raises
:class:`~moorage.deployments.templates.runtime.MissingRuntimeValue`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from moorage.deployments.templates.context import DeploymentContext
from moorage.deployments.templates.errors import (
    EXPRESSIONS_HELP,
    FUNCTIONS_HELP,
    ExpressionError,
    TemplateError,
    redact,
)
from moorage.deployments.templates.expressions import Call, Expression, IntegerLiteral, Member, StringLiteral
from moorage.deployments.templates.function_registry import REGISTRY, Fallbacks
from moorage.deployments.templates.model import Template
from moorage.deployments.templates.nodes import ArrayNode, Const, Expr, Node
from moorage.deployments.templates.runtime import Resolver
from moorage.deployments.templates.values import Json, find_key, is_int, type_name


class ParameterSource(Protocol):
    """Parameter values by name (case-insensitive): ``(True, value)``, or ``(False, None)`` when
    the template has no such parameter. Binding uses a source that evaluates default values on
    demand; expansion uses the bound values."""

    def value(self, name: str) -> tuple[bool, Json]: ...


@dataclass(frozen=True)
class ResourceTarget:
    """A resource of the template that ``reference()``/``list*()`` can name by its symbolic or
    plain name."""

    resource_id: str
    api_version: str | None


class TargetLookup(Protocol):
    """The resources of the template a name used as ``reference('name')`` designates (by id,
    symbolic name, ``type/name`` or name; several for a copy loop or an ambiguous name)."""

    def find(self, name: str) -> list[ResourceTarget]: ...


@dataclass(frozen=True)
class Permissions:
    """What the place an expression is written at allows."""

    runtime: bool = False  # reference(), list*()
    nondeterministic: bool = False  # utcNow(), newGuid()
    variables: bool = True


#: Parameter default values: utcNow()/newGuid() allowed, no variables, no runtime values.
PARAMETER_DEFAULT = Permissions(nondeterministic=True, variables=False)
#: Values that must be known before deployment: names, conditions, copy counts, dependsOn, scopes.
STATIC = Permissions()
#: Resource bodies and outputs: may use runtime values.
RUNTIME = Permissions(runtime=True)
#: The output value of a user-defined function.
FUNCTION_BODY = Permissions(variables=False)


@dataclass
class Shared:
    """State shared by every scope of one deployment's evaluation."""

    template: Template
    context: DeploymentContext
    parameters: ParameterSource
    secrets: frozenset[str] = frozenset()
    targets: TargetLookup | None = None
    variable_cache: dict[str, Json] = field(default_factory=dict)
    variables_in_progress: set[str] = field(default_factory=set)
    runtime_uses: int = 0


@dataclass(frozen=True)
class Scope:
    shared: Shared
    permissions: Permissions
    loops: Mapping[str, int] = field(default_factory=dict)  # folded loop name -> index
    current_loop: str | None = None
    lambda_variables: Mapping[str, Json] = field(default_factory=dict)
    function_arguments: Mapping[str, Json] | None = None  # inside a user-defined function
    resolver: Resolver | None = None

    def with_loop(self, name: str, index: int, *, current: bool = False) -> Scope:
        loops = dict(self.loops)
        loops[name.casefold()] = index
        return replace(self, loops=loops, current_loop=name.casefold() if current else self.current_loop)

    def with_lambda(self, values: Mapping[str, Json]) -> Scope:
        merged = dict(self.lambda_variables)
        merged.update({k.casefold(): v for k, v in values.items()})
        return replace(self, lambda_variables=merged)

    def for_variable(self) -> Scope:
        """Variables see neither copy loops nor lambda variables; they keep the use site's
        permission for runtime values."""
        return replace(self, loops={}, current_loop=None, lambda_variables={}, function_arguments=None)


@dataclass(frozen=True)
class Invocation:
    """One function call being evaluated: what function implementations get."""

    call: Call
    scope: Scope
    source: str

    @property
    def name(self) -> str:
        return self.call.display_name

    @property
    def arg_count(self) -> int:
        return len(self.call.args)

    def arg(self, index: int) -> Json:
        return evaluate_expression(self.call.args[index], self.scope, self.source)

    def args(self) -> list[Json]:
        return [self.arg(i) for i in range(self.arg_count)]

    def evaluate(self, expression: Expression, scope: Scope | None = None) -> Json:
        return evaluate_expression(expression, scope or self.scope, self.source)

    def error(self, message: str, *, at: int | None = None) -> ExpressionError:
        return ExpressionError(message, position=self.call.pos if at is None else at, expression=self.source)

    def fail(self, reason: str) -> ExpressionError:
        """``Unable to evaluate template language function 'name': reason. Please see ...``."""
        return self.error(
            f"Unable to evaluate template language function '{self.name}': {reason}. Please see "
            f"{FUNCTIONS_HELP}#{self.call.name.lower()} for usage details."
        )

    def not_expected(self, reason: str = "") -> ExpressionError:
        suffix = f" {reason}" if reason else ""
        return self.error(
            f"The template function '{self.name}' is not expected at this location.{suffix} Please see "
            f"{EXPRESSIONS_HELP} for usage details."
        )


FunctionImpl = Callable[[Invocation], Json]


def evaluate_node(node: Node, scope: Scope) -> Json:
    """The JSON value of ``node`` in ``scope``."""
    if isinstance(node, Const):
        return copy.deepcopy(node.value)
    if isinstance(node, Expr):
        return _evaluate_string(node, scope)
    if isinstance(node, ArrayNode):
        return [evaluate_node(item, scope) for item in node.items]
    result: dict[str, Json] = {}
    for key, value in node.entries:
        if isinstance(key, Expr):
            name = _evaluate_string(key, scope)
            if not isinstance(name, str):
                raise ExpressionError(
                    f"The property name expression '{key.parsed.source}' must evaluate to a string; it "
                    f"evaluated to a value of type '{type_name(name)}'.",
                    position=0,
                    expression=key.parsed.source,
                    path=key.path,
                )
        else:
            name = key
        result[name] = evaluate_node(value, scope)
    for loop in node.loops:
        count = evaluate_loop_count(loop.count, scope, f"property copy loop '{loop.name}'")
        result[loop.name] = [evaluate_node(loop.input, scope.with_loop(loop.name, i)) for i in range(count)]
    return result


def _evaluate_string(node: Expr, scope: Scope) -> Json:
    try:
        return evaluate_expression(node.parsed.root, scope, node.parsed.source)
    except ExpressionError as exc:
        if exc.path is not None:
            raise
        # The fault is in this string: name its exact place in the template.
        raise ExpressionError(
            exc.message, position=exc.position, expression=exc.expression, path=node.path
        ) from exc


#: ARM's limit on copy loop counts.
MAX_COPY_COUNT = 800


def evaluate_loop_count(node: Node, scope: Scope, what: str) -> int:
    count = evaluate_node(node, scope)
    if not is_int(count) or not isinstance(count, int) or count < 0 or count > MAX_COPY_COUNT:
        raise ExpressionError(
            f"The {what} has an invalid copy count. The copy count must be a non-negative integer value "
            f"and cannot exceed '{MAX_COPY_COUNT}'.",
            position=0,
            path=node.path,
        )
    return count


def evaluate_expression(expression: Expression, scope: Scope, source: str) -> Json:
    if isinstance(expression, StringLiteral):
        return expression.value
    if isinstance(expression, IntegerLiteral):
        return expression.value
    if isinstance(expression, Call):
        return _call(expression, scope, source)
    if isinstance(expression, Member):
        target = evaluate_expression(expression.target, scope, source)
        return _member(target, expression.name, expression.pos, source)
    index = evaluate_expression(expression.index, scope, source)
    target = evaluate_expression(expression.target, scope, source)
    return _index(target, index, expression.pos, source)


def _call(call: Call, scope: Scope, source: str) -> Json:
    invocation = Invocation(call, scope, source)
    impl = REGISTRY.get(call.key) if call.namespace is None else Fallbacks.user_function
    if impl is None and call.namespace is None and call.key.startswith("list"):
        impl = Fallbacks.list_function
    if impl is None:
        raise invocation.error(
            f"The template function '{call.name}' is not found. Please see {FUNCTIONS_HELP} for usage "
            "details."
        )
    return impl(invocation)


def _member(target: Json, name: str, pos: int, source: str) -> Json:
    if isinstance(target, dict):
        key = find_key(target, name)
        if key is None:
            available = ", ".join(target)
            raise ExpressionError(
                f"The language expression property '{name}' doesn't exist, available properties are "
                f"'{available}'.",
                position=pos,
                expression=source,
            )
        return target[key]
    raise ExpressionError(
        f"The language expression property '{name}' can't be evaluated: the value is of type "
        f"'{type_name(target)}', not 'Object'.",
        position=pos,
        expression=source,
    )


def _index(target: Json, index: Json, pos: int, source: str) -> Json:
    if isinstance(target, list):
        if not is_int(index) or not isinstance(index, int):
            raise ExpressionError(
                "The language expression array index must be an integer; it is of type "
                f"'{type_name(index)}'.",
                position=pos,
                expression=source,
            )
        if not 0 <= index < len(target):
            raise ExpressionError(
                f"The language expression property array index '{index}' is out of bounds.",
                position=pos,
                expression=source,
            )
        return target[index]
    if isinstance(target, dict):
        if not isinstance(index, str):
            raise ExpressionError(
                "The language expression property name must be a string; it is of type "
                f"'{type_name(index)}'.",
                position=pos,
                expression=source,
            )
        return _member(target, index, pos, source)
    raise ExpressionError(
        f"The language expression can't index a value of type '{type_name(target)}'.",
        position=pos,
        expression=source,
    )


def wrap_error(
    exc: ExpressionError, message: Callable[[str], str], path: str, secrets: frozenset[str]
) -> TemplateError:
    """``exc`` placed in its template: ``message(inner)`` is the full Azure text; the error keeps
    the position (and the path of the value the fault is in)."""
    return TemplateError(
        redact(message(exc.message), secrets),
        path=exc.path or path,
        position=exc.position,
    )


def check_type(value: Json, expected: str) -> bool:
    """Whether ``value`` has the ARM type ``expected`` (a ParameterType value, folded)."""
    kind = expected.casefold()
    if kind in ("string", "securestring"):
        return isinstance(value, str)
    if kind == "int":
        return is_int(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("object", "secureobject"):
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return False
