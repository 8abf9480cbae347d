"""Deployment and scope functions: ``parameters``, ``variables``, ``copyIndex``, ``deployment``,
``environment``, ``resourceGroup``, ``subscription``, ``tenant``."""

from __future__ import annotations

import copy

from moorage.deployments.templates.errors import FUNCTIONS_HELP, ExpressionError, TemplateFeatureNotSupported
from moorage.deployments.templates.evaluator import Invocation, evaluate_loop_count, evaluate_node
from moorage.deployments.templates.function_registry import function, special, string_arg, type_error
from moorage.deployments.templates.values import Json, is_int


@function("parameters", min_args=1, max_args=1)
def _parameters(inv: Invocation, args: list[Json]) -> Json:
    name = string_arg(inv, args, 0)
    arguments = inv.scope.function_arguments
    if arguments is not None:
        key = name.casefold()
        if key not in arguments:
            raise inv.error(
                f"The user-defined function parameter '{name}' is not found. Please see "
                f"{FUNCTIONS_HELP}#parameters for usage details."
            )
        return copy.deepcopy(arguments[key])
    found, value = inv.scope.shared.parameters.value(name)
    if not found:
        raise inv.error(
            f"The template parameter '{name}' is not found. Please see {FUNCTIONS_HELP}#parameters for "
            "usage details."
        )
    return copy.deepcopy(value)


@function("variables", min_args=1, max_args=1)
def _variables(inv: Invocation, args: list[Json]) -> Json:
    name = string_arg(inv, args, 0)
    if not inv.scope.permissions.variables:
        raise inv.not_expected()
    shared = inv.scope.shared
    key = name.casefold()
    definition = shared.template.variables.get(key)
    if definition is None:
        raise inv.error(
            f"The template variable '{name}' is not found. Please see {FUNCTIONS_HELP}#variables for usage "
            "details."
        )
    if key in shared.variable_cache:
        return copy.deepcopy(shared.variable_cache[key])
    if key in shared.variables_in_progress:
        raise inv.error(
            f"The template variable '{definition.name}' refers to itself through a circular reference."
        )
    shared.variables_in_progress.add(key)
    runtime_before = shared.runtime_uses
    scope = inv.scope.for_variable()
    try:
        if definition.loop_count is not None:
            count = evaluate_loop_count(
                definition.loop_count, scope, f"variable copy loop '{definition.name}'"
            )
            value: Json = [
                evaluate_node(definition.value, scope.with_loop(definition.name, i, current=True))
                for i in range(count)
            ]
        else:
            value = evaluate_node(definition.value, scope)
    except ExpressionError as exc:
        raise ExpressionError(
            f"The template variable '{definition.name}' is not valid: {exc.message}",
            position=exc.position,
            expression=exc.expression,
            path=exc.path or definition.path,
        ) from exc
    finally:
        shared.variables_in_progress.discard(key)
    if shared.runtime_uses == runtime_before:
        # Values built from reference()/list*() may change while a deployment runs: not cached.
        shared.variable_cache[key] = copy.deepcopy(value)
    return value


@special("copyIndex", max_args=2)
def _copy_index(inv: Invocation) -> Json:
    args = inv.args()
    loop: str | None = inv.scope.current_loop
    offset = 0
    if args and isinstance(args[0], str):
        loop = args[0].casefold()
        args = args[1:]
        index_of_offset = 1
    else:
        index_of_offset = 0
    if len(args) > 1:
        raise inv.fail("the optional loop name must come before the offset")
    if args:
        if not is_int(args[0]) or not isinstance(args[0], int):
            raise type_error(inv, index_of_offset, "Integer", args[0])
        offset = args[0]
    if loop is None or loop not in inv.scope.loops:
        if loop is not None and inv.scope.loops:
            raise inv.error(f"The template copy loop '{loop}' referenced by 'copyIndex' is not found.")
        raise inv.not_expected(
            "The function can only be used within a copy loop (resources, properties, variables)."
        )
    return inv.scope.loops[loop] + offset


@function("deployment", max_args=0)
def _deployment(inv: Invocation, args: list[Json]) -> Json:
    shared = inv.scope.shared
    context = shared.context
    raw = shared.template.raw
    template: dict[str, Json] = {}
    for key in ("$schema", "contentVersion", "metadata"):
        if key in raw:
            template[key] = copy.deepcopy(raw[key])
    properties: dict[str, Json] = {
        "template": template,
        "parameters": {},
        "mode": context.mode,
        "provisioningState": "Accepted",
    }
    if context.template_link is not None:
        properties["templateLink"] = copy.deepcopy(dict(context.template_link))
    result: dict[str, Json] = {"name": context.deployment_name, "properties": properties}
    if context.location is not None:
        result["location"] = context.location
    return result


@function("environment", max_args=0)
def _environment(inv: Invocation, args: list[Json]) -> Json:
    return copy.deepcopy(dict(inv.scope.shared.context.environment))


@function("resourceGroup", max_args=0)
def _resource_group(inv: Invocation, args: list[Json]) -> Json:
    context = inv.scope.shared.context
    group = context.resource_group
    if group is None:
        raise inv.not_expected("There is no resource group in a subscription-scope deployment.")
    result: dict[str, Json] = {
        "id": context.resource_group_id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": dict(group.tags),
        "properties": {"provisioningState": "Succeeded"},
    }
    if group.managed_by is not None:
        result["managedBy"] = group.managed_by
    return result


@function("subscription", max_args=0)
def _subscription(inv: Invocation, args: list[Json]) -> Json:
    context = inv.scope.shared.context
    return {
        "id": context.subscription_scope_id,
        "subscriptionId": context.subscription_id,
        "tenantId": context.tenant_id,
        "displayName": context.subscription_display_name,
    }


@function("tenant", max_args=0)
def _tenant(inv: Invocation, args: list[Json]) -> Json:
    context = inv.scope.shared.context
    return {
        "countryCode": context.tenant_country_code,
        "displayName": context.tenant_display_name,
        "id": f"/tenants/{context.tenant_id}",
        "tenantId": context.tenant_id,
    }


@function("managementGroup", max_args=1)
def _management_group(inv: Invocation, args: list[Json]) -> Json:
    raise TemplateFeatureNotSupported(
        "The template function 'managementGroup' is not supported: moorage has no management groups."
    )
