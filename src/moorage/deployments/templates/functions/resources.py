"""Resource functions: ``resourceId``, ``subscriptionResourceId``, ``tenantResourceId``,
``extensionResourceId`` (pure string work) and the runtime functions ``reference`` and ``list*``,
which ask the scope's :class:`~moorage.deployments.templates.runtime.Resolver`.

``reference``/``list*`` name their resource by id, or (for a resource of the same template) by
its name or symbolic name; the api-version may be omitted for a resource of the template (its
declared one is used).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from moorage.deployments.templates.function_registry import (
    Fallbacks,
    all_strings,
    check_arity,
    function,
    special,
    string_arg,
    type_error,
)
from moorage.deployments.templates.resource_ids import ResourceIdError, provider_path, resource_id
from moorage.deployments.templates.runtime import MissingRuntimeValue, RuntimeCall
from moorage.deployments.templates.values import Json

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import Invocation


def _type_position(inv: Invocation, args: list[str]) -> int:
    for i, value in enumerate(args):
        if "/" in value:
            return i
    raise inv.fail("the resource type argument is missing: one argument must be a type like 'Namespace/type'")


def _build(inv: Invocation, scope: str, resource_type: str, names: list[str]) -> str:
    try:
        return resource_id(scope, resource_type, names)
    except ResourceIdError as exc:
        raise inv.fail(str(exc)) from None


@function("resourceId", min_args=2)
def _resource_id(inv: Invocation, args: list[Json]) -> Json:
    values = all_strings(inv, args)
    at = _type_position(inv, values)
    context = inv.scope.shared.context
    subscription = context.subscription_id
    group = context.resource_group.name if context.resource_group else None
    if at == 1:
        group = values[0]
    elif at == 2:
        subscription, group = values[0], values[1]
    elif at > 2:
        raise inv.fail(
            "at most two arguments (subscription id, resource group name) may precede the resource type"
        )
    scope = f"/subscriptions/{subscription}" + (f"/resourceGroups/{group}" if group is not None else "")
    return _build(inv, scope, values[at], values[at + 1 :])


@function("subscriptionResourceId", min_args=2)
def _subscription_resource_id(inv: Invocation, args: list[Json]) -> Json:
    values = all_strings(inv, args)
    at = _type_position(inv, values)
    if at > 1:
        raise inv.fail("only a subscription id may precede the resource type")
    subscription = values[0] if at == 1 else inv.scope.shared.context.subscription_id
    return _build(inv, f"/subscriptions/{subscription}", values[at], values[at + 1 :])


@function("tenantResourceId", min_args=2)
def _tenant_resource_id(inv: Invocation, args: list[Json]) -> Json:
    values = all_strings(inv, args)
    return _build(inv, "", values[0], values[1:])


@function("extensionResourceId", min_args=3)
def _extension_resource_id(inv: Invocation, args: list[Json]) -> Json:
    values = all_strings(inv, args)
    base = values[0].rstrip("/")
    if not base.startswith("/"):
        raise inv.fail("the first argument must be the id of the resource the extension applies to")
    try:
        return base + provider_path(values[1], values[2:])
    except ResourceIdError as exc:
        raise inv.fail(str(exc)) from None


def _target(inv: Invocation, text: str) -> tuple[str, str | None]:
    """(resource id, declared api-version) for the first argument of reference()/list*()."""
    lookup = inv.scope.shared.targets
    found = lookup.find(text) if lookup is not None else []
    if len(found) == 1:
        return found[0].resource_id, found[0].api_version
    if text.startswith("/"):
        return text, None
    if found:
        raise inv.error(
            f"The resource name '{text}' designates {len(found)} resources of the template. Use "
            "resourceId() to name one of them."
        )
    raise inv.error(
        f"The resource '{text}' is not defined in the template. Please see "
        "https://aka.ms/arm-syntax-resources for usage details."
    )


def _runtime(inv: Invocation, call: RuntimeCall) -> Json:
    scope = inv.scope
    scope.shared.runtime_uses += 1
    if scope.resolver is None:
        raise MissingRuntimeValue(call)
    return copy.deepcopy(scope.resolver.resolve(call))


def reference_call(inv: Invocation) -> RuntimeCall:
    """The :class:`RuntimeCall` a ``reference(...)`` invocation stands for (arguments evaluated)."""
    check_arity(inv, 1, 3)
    if not inv.scope.permissions.runtime:
        raise inv.not_expected()
    args = inv.args()
    target, declared = _target(inv, string_arg(inv, args, 0))
    api_version = string_arg(inv, args, 1) if len(args) > 1 else declared
    full = False
    if len(args) > 2:
        mode = string_arg(inv, args, 2)
        if mode.casefold() != "full":
            raise inv.fail("the third argument must be 'Full'")
        full = True
    return RuntimeCall("reference", target, api_version, full)


def list_call(inv: Invocation) -> RuntimeCall:
    """The :class:`RuntimeCall` a ``list*(...)`` invocation stands for (arguments evaluated)."""
    check_arity(inv, 1, 3)
    if not inv.scope.permissions.runtime:
        raise inv.not_expected()
    args = inv.args()
    target, declared = _target(inv, string_arg(inv, args, 0))
    api_version = string_arg(inv, args, 1) if len(args) > 1 else declared
    if api_version is None:
        raise type_error(inv, 1, "String", None)
    body = args[2] if len(args) > 2 else None
    return RuntimeCall(inv.call.name, target, api_version, False, body)


@special("reference")
def _reference(inv: Invocation) -> Json:
    return _runtime(inv, reference_call(inv))


def list_function(inv: Invocation) -> Json:
    """Any function whose name starts with ``list`` (``listKeys``, ``listCredentials``...)."""
    return _runtime(inv, list_call(inv))


def is_runtime_function(name: str) -> bool:
    folded = name.casefold()
    return folded == "reference" or folded.startswith("list")


Fallbacks.list_function = list_function
