"""The ARM template language: parse, bind parameters, expand, evaluate.

Pure Python, no I/O. The deployment engine drives it in four steps::

    template = parse_template(doc)                          # InvalidTemplate on bad documents
    params = bind_parameters(template, body_params, ctx)    # {"name": {"value": v}}
    plan = expand(template, params, ctx)                    # resources in dependency order
    for wave in plan.waves():                               # (or start each resource as soon
        for resource in wave:                               #  as its depends_on are deployed)
            body = await resource.body.resolve(resolver)    # reference()/list*() answered here
            ...PUT resource.id?api-version=resource.api_version with body...
    outputs = await plan.resolve_outputs(resolver)          # {"name": {"type", "value"}}

* :func:`parse_template` validates the document (parameters, variables incl. ``copy``,
  user-defined ``functions``, resources incl. ``copy``/``condition``/``dependsOn``/``scope`` and
  nested children, outputs incl. ``copy``) and compiles every expression.
* :func:`bind_parameters` checks values against the declarations and evaluates defaults
  (``utcNow()``/``newGuid()`` are allowed only there). :class:`BoundParameters` hides secure
  values from ``repr`` and :meth:`~BoundParameters.echo` (the deployment's ``parameters``).
* :func:`expand` returns a :class:`DeploymentPlan`: one :class:`PlannedResource` per concrete
  resource (copy and condition applied) with its id, api-version and dependencies (explicit
  ``dependsOn`` and implicit ``reference()``/``list*()``/parent/scope/serial-batch ones), ordered,
  cycles refused. Its ``body`` is a :class:`LazyValue`: evaluated at expansion when it needs no
  runtime value (so template errors surface before anything is deployed), otherwise when the
  engine asks, with a resolver.
* Runtime values come from a :class:`Resolver` (sync) or an :class:`AsyncResolver` (the engine's;
  :meth:`LazyValue.resolve` fetches what the evaluation needs, awaiting each
  :class:`RuntimeCall`). :meth:`LazyValue.runtime_calls` lists the calls a value is known to need;
  :meth:`LazyValue.preview` gives the value with unresolved expressions left as text (what-if).
  :meth:`DeploymentPlan.waves` groups resources that can deploy in parallel;
  :meth:`DeploymentPlan.evaluate_outputs`/``resolve_outputs`` evaluate the outputs afterwards.
* :func:`evaluate` evaluates one JSON value standalone (tests, what-if tooling).

Errors: :class:`TemplateError` (``InvalidTemplate``; :class:`ParameterError` for parameter values;
:class:`OutputEvaluationError` ``DeploymentOutputEvaluationFailed``) with Azure's messages, the
JSON path of the fault and, for expressions, its position; :class:`TemplateFeatureNotSupported`
for valid ARM this host does not implement (Key Vault references, nested deployments,
management groups, type definitions). ``unique_string``/``deterministic_guid`` compute Azure's
``uniqueString()``/``guid()`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.deployments.templates.context import (
    DeploymentContext,
    ResourceGroupInfo,
    azure_cloud_environment,
)
from moorage.deployments.templates.errors import (
    EXPRESSIONS_HELP,
    ExpressionError,
    OutputEvaluationError,
    ParameterError,
    TemplateError,
    TemplateFeatureNotSupported,
)
from moorage.deployments.templates.evaluator import RUNTIME, Scope, Shared, evaluate_node, wrap_error
from moorage.deployments.templates.hashing import deterministic_guid, unique_string
from moorage.deployments.templates.model import ParameterType, Template
from moorage.deployments.templates.nodes import compile_value
from moorage.deployments.templates.parameters import BoundParameters, bind_parameters
from moorage.deployments.templates.parsing import parse_template
from moorage.deployments.templates.plan import (
    CopyPosition,
    DeploymentPlan,
    LazyValue,
    PlannedOutput,
    PlannedResource,
    expand,
)
from moorage.deployments.templates.runtime import (
    AsyncResolver,
    CachedResolver,
    MissingRuntimeValue,
    Resolver,
    RuntimeCall,
)
from moorage.deployments.templates.values import Json

__all__ = [
    "AsyncResolver",
    "BoundParameters",
    "CachedResolver",
    "CopyPosition",
    "DeploymentContext",
    "DeploymentPlan",
    "ExpressionError",
    "Json",
    "LazyValue",
    "MissingRuntimeValue",
    "OutputEvaluationError",
    "ParameterError",
    "ParameterType",
    "PlannedOutput",
    "PlannedResource",
    "Resolver",
    "ResourceGroupInfo",
    "RuntimeCall",
    "Template",
    "TemplateError",
    "TemplateFeatureNotSupported",
    "azure_cloud_environment",
    "bind_parameters",
    "deterministic_guid",
    "evaluate",
    "expand",
    "parse_template",
    "unique_string",
]


def evaluate(
    value: Json,
    context: DeploymentContext,
    *,
    template: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    resolver: Resolver | None = None,
) -> Json:
    """Evaluate one JSON value (expressions anywhere inside) as if it were a resource's properties
    in ``template`` (default: an empty template) deployed with ``parameters``
    (``{"name": {"value": v}}``). Raises :class:`TemplateError` with the message Azure gives for
    expression evaluation failures, and :class:`MissingRuntimeValue` for a runtime value without
    a resolver answer."""
    parsed = parse_template(template if template is not None else {"resources": []})
    bound = bind_parameters(parsed, parameters, context)
    node = compile_value(value, "value", property_loops=True)
    scope = Scope(Shared(parsed, context, bound, bound.secrets), RUNTIME, resolver=resolver)
    try:
        return evaluate_node(node, scope)
    except ExpressionError as exc:
        raise wrap_error(
            exc,
            lambda inner: (
                f"Deployment template language expression evaluation failed: '{inner}'. Please see "
                f"{EXPRESSIONS_HELP} for usage details."
            ),
            "value",
            bound.secrets,
        ) from exc
