"""What-if: the changes a deployment would make, predicted without making them.

Each planned resource is rendered as the engine would render it and compared with the resource
as it exists now (read through the same gateway, as the deployment's caller):

- missing now → ``Create``; present and every property the template sets already equal →
  ``NoChange``; otherwise ``Modify`` with a ``delta`` of property changes (paths like
  ``properties.sku.name``; arrays compared as a whole, ``Array``);
- a resource whose body needs the runtime state of a resource that does not exist yet
  (``reference()`` of something this deployment creates) cannot be predicted: ``Unsupported``
  with the reason, as Azure reports unevaluable expressions;
- Complete mode: the group's resources the template does not name → ``Delete``; Incremental
  mode lists them as ``Ignore``.

Only properties the template sets are compared: read-only properties the provider adds
(``provisioningState``, ``principalId``, …) are not changes.
"""

from __future__ import annotations

from typing import Any

from moorage.core.errors import MoorageError, NotFound
from moorage.deployments.plan import DeploymentPlan, Resolver
from moorage.deployments.providers import Caller, ResourceGateway

_COMPARED = ("location", "tags", "sku", "kind", "identity", "properties", "zones")


def _delta(before: Any, after: Any, path: str) -> list[dict[str, Any]]:
    """Property changes from ``before`` to ``after`` for the keys ``after`` sets."""
    if isinstance(after, dict) and isinstance(before, dict):
        changes: list[dict[str, Any]] = []
        lowered = {k.lower(): k for k in before}
        for key, value in after.items():
            sub = f"{path}.{key}" if path else key
            if key.lower() not in lowered:
                changes.append({"path": sub, "propertyChangeType": "Create", "after": value})
                continue
            changes.extend(_delta(before[lowered[key.lower()]], value, sub))
        return changes
    if _equal(before, after):
        return []
    if isinstance(after, list) and isinstance(before, list):
        return [{"path": path, "propertyChangeType": "Array", "before": before, "after": after}]
    return [{"path": path, "propertyChangeType": "Modify", "before": before, "after": after}]


def _equal(before: Any, after: Any) -> bool:
    if isinstance(before, str) and isinstance(after, str):
        # ARM compares locations and enum-like strings without regard to case or spaces.
        return before == after or before.replace(" ", "").lower() == after.replace(" ", "").lower()
    return bool(before == after)


async def predict(
    plan: DeploymentPlan,
    *,
    mode: str,
    gateway: ResourceGateway,
    resolver: Resolver,
    caller: Caller,
    base_url: str,
    scope: tuple[str, str] | None,
    deployment_id: str,
) -> list[dict[str, Any]]:
    """The ``changes`` of a ``WhatIfOperationResult``, in template order then deletions."""
    changes: list[dict[str, Any]] = []
    for res in plan.resources:
        change: dict[str, Any] = {"resourceId": res.resource_id, "deploymentId": deployment_id}
        if res.symbolic_name:
            change["symbolicName"] = res.symbolic_name
        try:
            before: dict[str, Any] | None = await gateway.get(
                caller, base_url, res.resource_id, res.api_version
            )
        except NotFound:
            before = None
        try:
            after = await res.render(resolver)
        except MoorageError as error:
            change.update(
                changeType="Unsupported",
                unsupportedReason=(
                    "Changes to the resource cannot be predicted because its definition depends on "
                    f"runtime values that are not available yet: {error.message}"
                ),
            )
            if before is not None:
                change["before"] = before
            changes.append(change)
            continue
        predicted = {"id": res.resource_id, "name": res.name, "type": res.resource_type, **after}
        if before is None:
            change.update(changeType="Create", after=predicted)
        else:
            compared = {k: v for k, v in after.items() if k in _COMPARED}
            delta = _delta(before, compared, "")
            change.update(
                changeType="Modify" if delta else "NoChange",
                before=before,
                after={**before, **predicted},
            )
            if delta:
                change["delta"] = delta
        changes.append(change)
    if scope is not None:
        planned = {r.key for r in plan.resources}
        for existing in await gateway.resources_in_group(caller, *scope):
            if existing.id.lower() in planned:
                continue
            changes.append(
                {
                    "resourceId": existing.id,
                    "changeType": "Delete" if mode == "Complete" else "Ignore",
                }
            )
    return changes
