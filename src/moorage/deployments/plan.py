"""A deployment plan: what the template language hands the engine.

The template package turns a template, its parameters and the deployment's scope into concrete
resources — copy loops expanded, conditions applied, names and ids evaluated — each with the
set of resources it must wait for (explicit ``dependsOn`` plus implicit ``reference()`` and
``list*()`` uses). A resource's body can depend on other resources' runtime state, so it is
rendered only when the engine deploys it, through a :class:`Resolver` that reads real resources.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Resolver(Protocol):
    """Runtime facts for ``reference()`` and ``list*()``, read from real resources."""

    async def reference(self, resource_id: str, api_version: str | None, *, full: bool) -> Any:
        """``reference(id[, apiVersion][, 'Full'])``: the resource's ``properties``, or with
        ``full`` the whole resource (``apiVersion``, ``location``, ``properties``, …)."""
        ...

    async def invoke(self, resource_id: str, api_version: str, action: str, body: Any) -> Any:
        """``list*(id, apiVersion[, body])``: POST ``{id}/{action}`` and return its body."""
        ...


Render = Callable[[Resolver], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class PlannedResource:
    """One resource to deploy. ``depends_on`` holds lower-cased resource ids of other planned
    resources; ``render`` produces the PUT body (``location``, ``tags``, ``sku``, ``kind``,
    ``identity``, ``properties``, …) once those are deployed."""

    resource_id: str
    resource_type: str
    name: str
    api_version: str
    render: Render
    depends_on: frozenset[str] = frozenset()
    symbolic_name: str | None = None
    # The body when it needs no runtime value (known before anything is deployed), for preflight.
    static_body: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return self.resource_id.lower()


async def _no_outputs(_resolver: Resolver) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class DeploymentPlan:
    """Everything the engine needs. ``parameters`` is the echo form of the bound parameters
    (``{name: {type, value}}``, secure ones without ``value``); ``outputs`` renders
    ``{name: {type, value}}`` after every resource succeeded."""

    resources: tuple[PlannedResource, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: Render = _no_outputs
    template_hash: str = ""


@dataclass(frozen=True)
class DeploymentScope:
    """Where a deployment runs and what ``resourceGroup()``, ``subscription()``, ``tenant()``,
    ``deployment()`` and ``environment()`` answer there. ``resource_group`` is ``None`` for a
    subscription-scope deployment, which has a ``location`` of its own instead."""

    subscription_id: str
    subscription_name: str
    tenant_id: str
    deployment_name: str
    resource_group: str | None = None
    resource_group_location: str | None = None
    resource_group_tags: dict[str, str] = field(default_factory=dict)
    location: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def resource_group_id(self) -> str | None:
        if self.resource_group is None:
            return None
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def deployment_id(self) -> str:
        base = self.resource_group_id or f"/subscriptions/{self.subscription_id}"
        return f"{base}/providers/Microsoft.Resources/deployments/{self.deployment_name}"
