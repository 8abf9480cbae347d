"""Shared helpers for the template language tests: a fixed deployment context and shortcuts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from moorage.deployments.templates import (
    DeploymentContext,
    DeploymentPlan,
    Json,
    Resolver,
    ResourceGroupInfo,
    bind_parameters,
    evaluate,
    expand,
    parse_template,
)

SUB = "5f8a3c1e-9d2b-4e7f-8a6c-1b3d5e7f9a0c"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
RG = "rg-templates"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
NOW = datetime(2019, 3, 5, 17, 53, 18, tzinfo=UTC)


def make_context(**overrides: Any) -> DeploymentContext:
    values: dict[str, Any] = {
        "subscription_id": SUB,
        "tenant_id": TENANT,
        "deployment_name": "dep1",
        "resource_group": ResourceGroupInfo(RG, "westeurope", {"env": "test"}),
        "now": NOW,
        "new_guid": lambda: "0d7b2d8f-3c1a-4a36-9d55-2b8f1e6a7c90",
    }
    values.update(overrides)
    return DeploymentContext(**values)


CONTEXT = make_context()


def ev(
    value: Json,
    *,
    template: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    resolver: Resolver | None = None,
    context: DeploymentContext = CONTEXT,
) -> Json:
    """Evaluate ``value`` as a resource property of ``template``."""
    return evaluate(value, context, template=template, parameters=parameters, resolver=resolver)


def template(resources: list[Any] | None = None, **sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": resources or [],
    }
    doc.update(sections)
    return doc


def plan_of(
    doc: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    context: DeploymentContext = CONTEXT,
) -> DeploymentPlan:
    parsed = parse_template(doc)
    return expand(parsed, bind_parameters(parsed, parameters, context), context)


def rid(resource_type: str, *names: str) -> str:
    namespace, *types = resource_type.split("/")
    path = "".join(f"/{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"{RG_ID}/providers/{namespace}{path}"
