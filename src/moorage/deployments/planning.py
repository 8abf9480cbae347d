"""Template + parameters + scope → the engine's :class:`~moorage.deployments.plan.DeploymentPlan`.

The bridge between the template language (:mod:`moorage.deployments.templates`, pure) and the
engine (which deploys through real providers). Binding and planning are separate steps because
a deployment binds its parameters once, when it is accepted — ``utcNow()``/``newGuid()``
defaults are evaluated then and stored with the request — and plans again from those bound
values whenever it runs (also after a restart), so every run sees the same values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from moorage.core.errors import InvalidArgument
from moorage.deployments import plan as engine_plan
from moorage.deployments.plan import DeploymentScope, Resolver
from moorage.deployments.templates import (
    DeploymentContext,
    MissingRuntimeValue,
    ResourceGroupInfo,
    RuntimeCall,
    azure_cloud_environment,
    bind_parameters,
    expand,
    parse_template,
)
from moorage.deployments.templates import DeploymentPlan as TemplatePlan
from moorage.deployments.templates import PlannedResource as TemplateResource
from moorage.deployments.templates.values import Json


def _context(scope: DeploymentScope) -> DeploymentContext:
    group = (
        ResourceGroupInfo(
            scope.resource_group, scope.resource_group_location or "", scope.resource_group_tags
        )
        if scope.resource_group is not None
        else None
    )
    env = scope.environment
    authentication = env.get("authentication") if isinstance(env.get("authentication"), dict) else {}
    environment = azure_cloud_environment(
        resource_manager=str(env.get("resourceManager") or "https://management.azure.com/"),
        login_endpoint=str(
            (authentication or {}).get("loginEndpoint") or "https://login.microsoftonline.com/"
        ),
        name=str(env.get("name") or "AzureCloud"),
    )
    return DeploymentContext(
        subscription_id=scope.subscription_id,
        tenant_id=scope.tenant_id,
        deployment_name=scope.deployment_name,
        resource_group=group,
        location=scope.location,
        subscription_display_name=scope.subscription_name,
        environment=environment,
    )


def bind(
    template: Mapping[str, Any], parameters: Mapping[str, Any], scope: DeploymentScope
) -> dict[str, Any]:
    """Check the template and bind ``parameters`` (``{name: {value}}``); return every
    parameter's value, defaults evaluated. Raises InvalidTemplate / parameter errors."""
    parsed = parse_template(template)
    bound = bind_parameters(parsed, parameters, _context(scope))
    return {name: bound[name] for name in bound}


class _AsyncResolver:
    """The template language's runtime calls answered by the engine's resolver."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(self, call: RuntimeCall) -> Json:
        if call.is_reference:
            value: Json = await self._resolver.reference(call.resource_id, call.api_version, full=call.full)
            return value
        if not call.api_version:
            raise InvalidArgument(
                f"The function '{call.function}' needs an api-version for '{call.resource_id}'.",
                code="InvalidTemplate",
            )
        result: Json = await self._resolver.invoke(
            call.resource_id, call.api_version, call.function, call.body
        )
        return result


def _render(resource: TemplateResource) -> engine_plan.Render:
    async def render(resolver: Resolver) -> dict[str, Any]:
        body = await resource.body.resolve(_AsyncResolver(resolver))
        if not isinstance(body, dict):
            raise InvalidArgument(
                f"The template resource '{resource.name}' did not evaluate to an object.",
                code="InvalidTemplate",
            )
        return body

    return render


def _static(resource: TemplateResource) -> dict[str, Any] | None:
    try:
        body = resource.body.evaluate()
    except MissingRuntimeValue:
        return None
    return body if isinstance(body, dict) else None


def _outputs(plan: TemplatePlan) -> engine_plan.Render:
    async def outputs(resolver: Resolver) -> dict[str, Any]:
        return dict(await plan.resolve_outputs(_AsyncResolver(resolver)))

    return outputs


def template_hash(template: Mapping[str, Any]) -> str:
    """``properties.templateHash``: a decimal digest of the minified template (stable per template)."""
    minified = json.dumps(template, separators=(",", ":"), sort_keys=True).encode()
    return str(int.from_bytes(hashlib.sha256(minified).digest()[:8], "big"))


def plan(
    template: Mapping[str, Any], bound: Mapping[str, Any], scope: DeploymentScope
) -> engine_plan.DeploymentPlan:
    """Expand the template with its bound parameter values into the engine's plan."""
    parsed = parse_template(template)
    context = _context(scope)
    parameters = bind_parameters(parsed, {k: {"value": v} for k, v in bound.items()}, context)
    expanded = expand(parsed, parameters, context)
    resources = tuple(
        engine_plan.PlannedResource(
            resource_id=r.id,
            resource_type=r.resource_type,
            name=r.resource_name,
            api_version=r.api_version,
            render=_render(r),
            depends_on=frozenset(d.lower() for d in r.depends_on),
            symbolic_name=r.symbolic_name,
            static_body=_static(r),
        )
        for r in expanded.resources
    )
    return engine_plan.DeploymentPlan(
        resources=resources,
        parameters=dict(parameters.echo()),
        outputs=_outputs(expanded),
        template_hash=template_hash(template),
    )
