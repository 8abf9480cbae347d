"""User-defined functions: ``namespace.name(args)`` from the template's ``functions`` section.

As in ARM, a user-defined function sees only its own parameters (``parameters('x')``): no
template parameters or variables, no ``reference``/``list*``, no other user-defined functions.
Argument and result types are checked against the declaration.
"""

from __future__ import annotations

from dataclasses import replace

from moorage.deployments.templates.errors import FUNCTIONS_HELP, ExpressionError
from moorage.deployments.templates.evaluator import FUNCTION_BODY, Invocation, check_type, evaluate_node
from moorage.deployments.templates.function_registry import Fallbacks
from moorage.deployments.templates.values import Json, type_name


def call_user_function(inv: Invocation) -> Json:
    scope = inv.scope
    if scope.function_arguments is not None:
        raise inv.error(
            f"The user-defined function '{inv.name}' can't be called from another user-defined function."
        )
    definition = scope.shared.template.functions.get(inv.name.casefold())
    if definition is None:
        raise inv.error(
            f"The template function '{inv.name}' is not found. Please see {FUNCTIONS_HELP} for usage details."
        )
    if inv.arg_count != len(definition.parameters):
        raise inv.fail(
            f"function requires {len(definition.parameters)} argument(s) while {inv.arg_count} were provided"
        )
    arguments: dict[str, Json] = {}
    for i, (name, kind) in enumerate(definition.parameters):
        value = inv.arg(i)
        if not check_type(value, kind.value):
            raise inv.error(
                f"The user-defined function '{inv.name}' expects its parameter '{name}' to be of type "
                f"'{kind.json_type}'. The provided value is of type '{type_name(value)}'.",
                at=inv.call.args[i].pos,
            )
        arguments[name.casefold()] = value
    body_scope = replace(
        scope,
        permissions=FUNCTION_BODY,
        loops={},
        current_loop=None,
        lambda_variables={},
        function_arguments=arguments,
    )
    try:
        result = evaluate_node(definition.output, body_scope)
    except ExpressionError as exc:
        raise ExpressionError(
            f"The user-defined function '{inv.name}' is not valid: {exc.message}",
            position=exc.position,
            expression=exc.expression,
            path=exc.path or definition.path,
        ) from exc
    if not check_type(result, definition.output_type.value):
        raise inv.error(
            f"The user-defined function '{inv.name}' returned a value of type '{type_name(result)}'; its "
            f"output is declared as '{definition.output_type.json_type}'."
        )
    return result


Fallbacks.user_function = call_user_function
