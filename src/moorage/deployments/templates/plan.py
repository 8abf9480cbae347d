"""``expand``: a template with bound parameters becomes a :class:`DeploymentPlan`.

Expansion applies copy loops and conditions, evaluates every resource's name, api-version and
scope (values that must be known before anything is deployed), builds each resource's id, and
computes its dependencies:

* explicit: ``dependsOn`` entries, naming a resource by id, by name, by ``type/name``, by
  symbolic name, or a whole copy loop by its name (an entry naming a resource whose condition is
  false is dropped, as in ARM; one naming nothing raises ``InvalidTemplate``);
* implicit: a nested child on its parent; an extension resource on the resource of its
  ``scope``; every resource of the template named by a ``reference()`` or ``list*()`` call in the
  resource's body (also through variables); the previous batch of a ``Serial`` copy loop.

The dependency graph is checked for cycles (``InvalidTemplate`` naming the cycle) and the plan
lists resources in a deployable order.

Resource bodies are :class:`LazyValue` objects. Expansion evaluates each body once without
runtime values, so errors surface before anything is deployed; a body that needs
``reference()``/``list*()`` stays lazy and is evaluated by the engine once its dependencies are
deployed, with a :class:`~moorage.deployments.templates.runtime.Resolver` (or, asynchronously,
:meth:`LazyValue.resolve`). Outputs work the same way after the deployment.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from moorage.core.errors import ErrorDetail
from moorage.deployments.templates.context import DeploymentContext
from moorage.deployments.templates.errors import (
    FUNCTIONS_HELP,
    RESOURCES_HELP,
    ExpressionError,
    OutputEvaluationError,
    TemplateError,
    TemplateFeatureNotSupported,
    redact,
    validation_failed,
)
from moorage.deployments.templates.evaluator import (
    RUNTIME,
    STATIC,
    Invocation,
    ResourceTarget,
    Scope,
    Shared,
    check_type,
    evaluate_expression,
    evaluate_loop_count,
    evaluate_node,
    wrap_error,
)
from moorage.deployments.templates.expressions import Call, Expression, Index, Member, StringLiteral
from moorage.deployments.templates.functions.resources import is_runtime_function, list_call, reference_call
from moorage.deployments.templates.model import OutputDefinition, ParameterType, ResourceDefinition, Template
from moorage.deployments.templates.nodes import ArrayNode, Expr, Node, ObjectNode, child_path, expressions_in
from moorage.deployments.templates.parameters import BoundParameters
from moorage.deployments.templates.resource_ids import (
    ResourceIdError,
    name_segment_count,
    parse_id,
    provider_path,
    resource_id,
    split_name,
)
from moorage.deployments.templates.runtime import (
    AsyncResolver,
    CachedResolver,
    MissingRuntimeValue,
    Resolver,
    RuntimeCall,
)
from moorage.deployments.templates.values import Json, type_name

#: ARM's limit on the resources of one deployment (copy loops expanded).
MAX_RESOURCES = 800
#: How many runtime values one lazy evaluation may fetch before giving up (a guard, not a limit
#: real templates reach).
MAX_RUNTIME_FETCHES = 1000


class LazyValue:
    """A template value evaluated on demand, in the scope it was written in.

    :meth:`evaluate` returns plain JSON (a fresh copy each time). It raises
    :class:`~moorage.deployments.templates.runtime.MissingRuntimeValue` when the value needs a
    runtime value the resolver does not give, and :class:`TemplateError` for faults in the
    template. :meth:`runtime_calls` lists the runtime values the value is known to need.
    """

    def __init__(
        self,
        compute: Callable[[Scope], Json],
        scope: Scope,
        *,
        nodes: tuple[Node, ...],
        describe: Callable[[str], str],
        path: str,
        known: tuple[Json] | None = None,
    ) -> None:
        self._compute = compute
        self._scope = scope
        self._nodes = nodes
        self._describe = describe
        self.path = path
        self._known = known

    def __repr__(self) -> str:
        return f"LazyValue(path={self.path!r}, needs_runtime={self.needs_runtime})"

    @property
    def needs_runtime(self) -> bool:
        """Whether the value could not be evaluated without runtime values."""
        return self._known is None

    def evaluate(self, resolver: Resolver | None = None) -> Json:
        if self._known is not None:
            return copy.deepcopy(self._known[0])
        scope = replace(self._scope, resolver=resolver)
        try:
            return self._compute(scope)
        except ExpressionError as exc:
            raise wrap_error(exc, self._describe, self.path, scope.shared.secrets) from exc

    async def resolve(self, resolver: AsyncResolver) -> Json:
        """Evaluate, awaiting every runtime value the evaluation needs from ``resolver``."""
        if self._known is not None:
            return copy.deepcopy(self._known[0])
        cache = CachedResolver()
        for call in self.runtime_calls():
            cache.add(call, await resolver.resolve(call))
        for _ in range(MAX_RUNTIME_FETCHES):
            try:
                return self.evaluate(cache)
            except MissingRuntimeValue as missing:
                cache.add(missing.call, await resolver.resolve(missing.call))
        raise TemplateError(
            f"The value at path '{self.path}' needs more than {MAX_RUNTIME_FETCHES} runtime values.",
            path=self.path,
        )

    def preview(self) -> Json:
        """The value as far as it is known before deployment: every expression that needs a
        runtime value is left as its expression text (``"[reference('id').principalId]"``), as
        Azure's what-if shows it. Raises :class:`TemplateError` like :meth:`evaluate`."""
        if self._known is not None:
            return copy.deepcopy(self._known[0])
        scope = replace(self._scope, resolver=None)
        try:
            if len(self._nodes) == 1:
                return _preview(self._nodes[0], scope)
            return self._compute(scope)
        except MissingRuntimeValue:
            return None
        except ExpressionError as exc:
            raise wrap_error(exc, self._describe, self.path, scope.shared.secrets) from exc

    def runtime_calls(self) -> tuple[RuntimeCall, ...]:
        """The ``reference()``/``list*()`` calls in this value whose arguments can be evaluated
        without runtime values (in order, without duplicates)."""
        if self._known is not None:
            return ()
        return tuple(discover_runtime_calls(self._nodes, self._scope))


def _preview(node: Node, scope: Scope) -> Json:
    if isinstance(node, Expr):
        try:
            return evaluate_expression(node.parsed.root, scope, node.parsed.source)
        except MissingRuntimeValue:
            return node.parsed.source
    if isinstance(node, ArrayNode):
        return [_preview(item, scope) for item in node.items]
    if isinstance(node, ObjectNode):
        result: dict[str, Json] = {}
        for key, value in node.entries:
            name = key if isinstance(key, str) else _preview(key, scope)
            result[name if isinstance(name, str) else str(key)] = _preview(value, scope)
        for loop in node.loops:
            try:
                count = evaluate_loop_count(loop.count, scope, f"property copy loop '{loop.name}'")
            except MissingRuntimeValue:
                result[loop.name] = loop.count.parsed.source if isinstance(loop.count, Expr) else []
                continue
            result[loop.name] = [_preview(loop.input, scope.with_loop(loop.name, i)) for i in range(count)]
        return result
    return copy.deepcopy(node.value)


def discover_runtime_calls(nodes: tuple[Node, ...], scope: Scope) -> Iterator[RuntimeCall]:
    """Best-effort static discovery of runtime calls, following ``variables()`` references."""
    seen: set[tuple[str, str, str, bool, str]] = set()
    visited_variables: set[str] = set()

    def walk_node(node: Node, node_scope: Scope) -> Iterator[RuntimeCall]:
        for expr in expressions_in(node):
            yield from walk(expr.parsed.root, expr.parsed.source, node_scope)

    def walk(expression: Expression, source: str, node_scope: Scope) -> Iterator[RuntimeCall]:
        if isinstance(expression, Member):
            yield from walk(expression.target, source, node_scope)
            return
        if isinstance(expression, Index):
            yield from walk(expression.target, source, node_scope)
            yield from walk(expression.index, source, node_scope)
            return
        if not isinstance(expression, Call):
            return
        for arg in expression.args:
            yield from walk(arg, source, node_scope)
        if expression.namespace is None and is_runtime_function(expression.name):
            invocation = Invocation(expression, replace(node_scope, resolver=None), source)
            try:
                call = reference_call(invocation) if expression.key == "reference" else list_call(invocation)
            except (TemplateError, MissingRuntimeValue):
                return
            if call.key() not in seen:
                seen.add(call.key())
                yield call
        elif (
            expression.key == "variables"
            and expression.args
            and isinstance(expression.args[0], StringLiteral)
        ):
            name = expression.args[0].value.casefold()
            definition = node_scope.shared.template.variables.get(name)
            if definition is not None and name not in visited_variables:
                visited_variables.add(name)
                variable_scope = node_scope.for_variable()
                if definition.loop_count is not None:
                    variable_scope = variable_scope.with_loop(definition.name, 0, current=True)
                yield from walk_node(definition.value, variable_scope)

    for node in nodes:
        yield from walk_node(node, scope)


@dataclass(frozen=True)
class CopyPosition:
    """Where a resource sits in its copy loop."""

    name: str
    index: int
    count: int
    mode: Literal["Parallel", "Serial"]
    batch_size: int


@dataclass(frozen=True)
class PlannedResource:
    """One concrete resource to deploy.

    ``id`` is its full resource id; ``resource_type`` and ``resource_name`` are what the id
    addresses (for an extension resource, e.g. ``Microsoft.Authorization/roleAssignments``);
    ``type`` and ``name`` are as the template declares them (flattened: ``registry/scopeMap``).
    ``scope`` is the id of the resource an extension resource applies to. ``depends_on`` holds
    the ids of the resources of this plan it must wait for (explicit and implicit);
    ``explicit_depends_on`` the subset named by ``dependsOn``. ``body`` evaluates to the request
    body for the resource provider: every resource member the template language does not consume
    (``location``, ``tags``, ``sku``, ``kind``, ``identity``, ``properties``, ``zones``...).
    """

    id: str
    type: str
    name: str
    resource_type: str
    resource_name: str
    api_version: str
    body: LazyValue = field(repr=False)
    depends_on: tuple[str, ...] = ()
    explicit_depends_on: tuple[str, ...] = ()
    scope: str | None = None
    copy: CopyPosition | None = None
    symbolic_name: str | None = None
    template_path: str = ""


@dataclass(frozen=True)
class PlannedOutput:
    name: str
    type: ParameterType
    value: LazyValue = field(repr=False)
    condition: LazyValue | None = field(default=None, repr=False)

    @property
    def secure(self) -> bool:
        return self.type.secure


@dataclass(frozen=True)
class DeploymentPlan:
    """What a deployment will do: resources in dependency order, and its outputs."""

    resources: tuple[PlannedResource, ...]
    outputs: tuple[PlannedOutput, ...]
    skipped: tuple[str, ...] = ()  # ids of resources whose condition is false

    def resource(self, resource_id_text: str) -> PlannedResource:
        folded = resource_id_text.casefold()
        for planned in self.resources:
            if planned.id.casefold() == folded:
                return planned
        raise KeyError(resource_id_text)

    def waves(self) -> tuple[tuple[PlannedResource, ...], ...]:
        """Resources grouped so that each group depends only on earlier groups (each group can be
        deployed in parallel)."""
        level: dict[str, int] = {}
        for planned in self.resources:
            level[planned.id.casefold()] = 1 + max(
                (level[d.casefold()] for d in planned.depends_on), default=-1
            )
        groups: dict[int, list[PlannedResource]] = {}
        for planned in self.resources:
            groups.setdefault(level[planned.id.casefold()], []).append(planned)
        return tuple(tuple(groups[k]) for k in sorted(groups))

    def evaluate_outputs(self, resolver: Resolver | None = None) -> dict[str, dict[str, Json]]:
        """``{name: {"type": ..., "value": ...}}`` as a deployment response carries them (secure
        outputs without their value). Raises :class:`OutputEvaluationError`
        (``DeploymentOutputEvaluationFailed``, one detail per failed output)."""
        results: dict[str, dict[str, Json]] = {}
        failures: list[tuple[str, TemplateError]] = []
        for output in self.outputs:
            try:
                if output.condition is not None and output.condition.evaluate(resolver) is not True:
                    continue
                results[output.name] = _output_entry(output, output.value.evaluate(resolver))
            except TemplateError as exc:
                failures.append((output.name, exc))
        _raise_output_failures(failures)
        return results

    async def resolve_outputs(self, resolver: AsyncResolver) -> dict[str, dict[str, Json]]:
        """:meth:`evaluate_outputs`, awaiting runtime values from ``resolver``."""
        results: dict[str, dict[str, Json]] = {}
        failures: list[tuple[str, TemplateError]] = []
        for output in self.outputs:
            try:
                if output.condition is not None and await output.condition.resolve(resolver) is not True:
                    continue
                results[output.name] = _output_entry(output, await output.value.resolve(resolver))
            except TemplateError as exc:
                failures.append((output.name, exc))
        _raise_output_failures(failures)
        return results


def _output_entry(output: PlannedOutput, value: Json) -> dict[str, Json]:
    if not check_type(value, output.type.value):
        raise TemplateError(
            f"The template output '{output.name}' is not valid: Template output JToken type is not valid. "
            f"Expected '{output.type.json_type}'. Actual '{type_name(value)}'.",
            path=output.value.path,
        )
    entry: dict[str, Json] = {"type": output.type.display}
    if not output.secure:
        entry["value"] = value
    return entry


def _raise_output_failures(failures: list[tuple[str, TemplateError]]) -> None:
    if not failures:
        return
    names = ",".join(name for name, _ in failures)
    raise OutputEvaluationError(
        f"Unable to evaluate template outputs: '{names}'. Please see error details and deployment "
        "operations. Please see https://aka.ms/arm-common-errors for usage details.",
        details=[
            ErrorDetail("DeploymentOutputEvaluationFailed", exc.message, name) for name, exc in failures
        ],
    )


# --- expansion ----------------------------------------------------------------------------------


@dataclass
class _Instance:
    definition: ResourceDefinition
    order: int
    scope: Scope
    included: bool
    name: str = ""  # empty while unknown (a skipped resource whose name does not evaluate)
    id: str = ""
    api_version: str | None = None
    extension_scope: str | None = None
    copy: CopyPosition | None = None
    parent: _Instance | None = None
    explicit: list[str] = field(default_factory=list)
    implicit: list[str] = field(default_factory=list)


class _Targets:
    """Finds resources of the template by id, symbolic name, ``type/name`` or name."""

    def __init__(self, instances: list[_Instance]) -> None:
        self.instances = [i for i in instances if i.id]

    def find(self, text: str) -> list[ResourceTarget]:
        return [ResourceTarget(i.id, i.api_version) for i in self.match(text)]

    def match(self, text: str) -> list[_Instance]:
        folded = text.casefold().rstrip("/")
        if folded.startswith("/"):
            return [i for i in self.instances if i.id.casefold() == folded]
        by_symbol = [
            i
            for i in self.instances
            if i.definition.symbolic_name and i.definition.symbolic_name.casefold() == folded
        ]
        if by_symbol:
            return by_symbol
        by_loop = [
            i for i in self.instances if i.definition.copy and i.definition.copy.name.casefold() == folded
        ]
        if by_loop:
            return by_loop
        by_type_name = [i for i in self.instances if f"{i.definition.type}/{i.name}".casefold() == folded]
        if by_type_name:
            return by_type_name
        return [i for i in self.instances if i.name.casefold() == folded]


def expand(template: Template, parameters: BoundParameters, context: DeploymentContext) -> DeploymentPlan:
    """Expand ``template`` for one deployment. Raises :class:`TemplateError` (``InvalidTemplate``)
    for any fault found before deployment: names, conditions, copy counts, dependencies, cycles,
    and expressions in resource bodies that fail without runtime values."""
    shared = Shared(template=template, context=context, parameters=parameters, secrets=parameters.secrets)
    base_scope = Scope(shared, STATIC)
    instances = _instantiate(template, base_scope, context)
    targets = _Targets(instances)
    shared.targets = targets
    included = [i for i in instances if i.included and not i.definition.existing]
    if len(included) > MAX_RESOURCES:
        raise TemplateError(
            validation_failed(
                f"The number of template resources limit exceeded. Limit: '{MAX_RESOURCES}' and actual: "
                f"'{len(included)}'. Please see {RESOURCES_HELP} for usage details."
            ),
            path=child_path(template.base_path, "resources"),
        )
    _check_duplicates(included, shared.secrets)
    by_id = {i.id.casefold(): i for i in included if i.id}
    for instance in included:
        _explicit_dependencies(instance, targets, shared.secrets)
        _implicit_dependencies(instance, by_id)
    _serial_batches(included)
    ordered = _topological(included, shared.secrets)
    planned = tuple(_plan_resource(i, shared.secrets) for i in ordered)
    outputs = tuple(_plan_output(o, Scope(shared, RUNTIME)) for o in template.outputs)
    skipped = tuple(i.id for i in instances if not i.included and i.id and not i.definition.existing)
    return DeploymentPlan(planned, outputs, skipped)


def _resource_error(
    definition: ResourceDefinition, reason: str, secrets: frozenset[str], path: str | None = None
) -> TemplateError:
    return TemplateError(
        redact(
            validation_failed(
                f"The template resource '{definition.display_name}' at path '{definition.path}' is not "
                f"valid: {reason}. Please see {FUNCTIONS_HELP} for usage details."
            ),
            secrets,
        ),
        path=path or definition.path,
    )


def _describe_static(definition: ResourceDefinition) -> Callable[[str], str]:
    return lambda inner: validation_failed(
        f"The template resource '{definition.display_name}' at path '{definition.path}' is not valid: "
        f"{inner}. Please see {FUNCTIONS_HELP} for usage details."
    )


def _instantiate(template: Template, base_scope: Scope, context: DeploymentContext) -> list[_Instance]:
    secrets = base_scope.shared.secrets
    instances: list[_Instance] = []
    by_definition: dict[int, list[_Instance]] = {}
    for definition in template.resources:
        if definition.type.casefold() == "microsoft.resources/deployments":
            raise TemplateFeatureNotSupported(
                f"The template resource '{definition.display_name}' is a nested deployment "
                "('Microsoft.Resources/deployments'), which moorage does not support."
            )
        parents: list[_Instance | None] = (
            list(by_definition.get(id(definition.parent), [])) if definition.parent is not None else [None]
        )
        created: list[_Instance] = []
        for parent in parents:
            scope = parent.scope if parent is not None else base_scope
            try:
                created.extend(
                    _instances_of(definition, scope, parent, context, len(instances) + len(created))
                )
            except ExpressionError as exc:
                raise wrap_error(exc, _describe_static(definition), definition.path, secrets) from exc
        by_definition[id(definition)] = created
        instances.extend(created)
    return instances


def _instances_of(
    definition: ResourceDefinition,
    scope: Scope,
    parent: _Instance | None,
    context: DeploymentContext,
    order: int,
) -> list[_Instance]:
    secrets = scope.shared.secrets
    scopes: list[tuple[Scope, CopyPosition | None]] = []
    if definition.copy is not None:
        loop = definition.copy
        count = evaluate_loop_count(loop.count, scope, f"template resource '{definition.display_name}'")
        batch = 1 if loop.mode == "Serial" else count
        if loop.batch_size is not None:
            batch_value = evaluate_node(loop.batch_size, scope)
            if not isinstance(batch_value, int) or isinstance(batch_value, bool) or batch_value < 1:
                raise _resource_error(
                    definition, "the copy batchSize must be a positive integer", secrets, loop.path
                )
            batch = batch_value
        for i in range(count):
            loop_position = CopyPosition(loop.name, i, count, loop.mode, max(batch, 1))
            scopes.append((scope.with_loop(loop.name, i, current=True), loop_position))
    else:
        scopes.append((scope, None))
    result: list[_Instance] = []
    for instance_scope, position in scopes:
        included = parent is None or parent.included
        if included and definition.condition is not None:
            verdict = evaluate_node(definition.condition, instance_scope)
            if not isinstance(verdict, bool):
                raise _resource_error(
                    definition,
                    "the condition must evaluate to a boolean; it evaluated to a value of type "
                    f"'{type_name(verdict)}'",
                    secrets,
                    definition.condition.path,
                )
            included = verdict
        instance = _Instance(
            definition, order + len(result), instance_scope, included, copy=position, parent=parent
        )
        try:
            _name_and_id(instance, context)
        except (ExpressionError, TemplateError):
            if included:
                raise
            # ARM does not require the names of resources it skips to evaluate.
        result.append(instance)
    return result


def _name_and_id(instance: _Instance, context: DeploymentContext) -> None:
    definition, scope = instance.definition, instance.scope
    secrets = scope.shared.secrets
    name = evaluate_node(definition.name, scope)
    if not isinstance(name, str) or not name:
        raise _resource_error(
            definition, "the name must evaluate to a non-empty string", secrets, definition.name.path
        )
    expected = name_segment_count(definition.type)
    segments = split_name(name)
    if instance.parent is not None and bool(instance.parent.name) and len(segments) != expected:
        segments = [*split_name(instance.parent.name), *segments]
        name = "/".join(segments)
    if len(segments) != expected or not all(segments):
        raise TemplateError(
            redact(
                validation_failed(
                    f"The template resource '{name}' for type '{definition.type}' at path "
                    f"'{definition.path}' has incorrect segment lengths. A nested resource type must have "
                    "identical number of segments as its resource name. A root resource type must have "
                    f"segment length one greater than its resource name. Please see {RESOURCES_HELP} for "
                    "usage details."
                ),
                secrets,
            ),
            path=definition.name.path,
        )
    instance.name = name
    if definition.api_version is not None:
        api_version = evaluate_node(definition.api_version, scope)
        if not isinstance(api_version, str) or not api_version:
            raise _resource_error(
                definition, "the apiVersion must be a non-empty string", secrets, definition.api_version.path
            )
        instance.api_version = api_version
    base = context.resource_group_id or context.subscription_scope_id
    try:
        if definition.scope is not None:
            target = evaluate_node(definition.scope, scope)
            if not isinstance(target, str) or not target:
                raise _resource_error(
                    definition, "the scope must evaluate to a resource id", secrets, definition.scope.path
                )
            instance.extension_scope = (
                target.rstrip("/") if target.startswith("/") else _relative_scope(base, target)
            )
            instance.id = instance.extension_scope + provider_path(definition.type, segments)
        else:
            instance.id = resource_id(base, definition.type, segments)
    except ResourceIdError as exc:
        raise _resource_error(definition, str(exc), secrets) from exc
    parsed = parse_id(instance.id)
    if (
        parsed is not None
        and parsed.scope
        and parsed.scope.casefold() != base.casefold()
        and instance.extension_scope is None
    ):
        instance.extension_scope = parsed.scope


def _relative_scope(base: str, relative: str) -> str:
    segments = relative.strip("/").split("/")
    if len(segments) < 3 or len(segments) % 2 == 0:
        raise ResourceIdError(
            f"the scope '{relative}' is neither a resource id nor a resource of the deployment's scope "
            "('Namespace/type/name')"
        )
    return f"{base}/providers/{relative.strip('/')}"


def _check_duplicates(instances: list[_Instance], secrets: frozenset[str]) -> None:
    seen: dict[str, _Instance] = {}
    for instance in instances:
        key = instance.id.casefold()
        if key in seen:
            raise TemplateError(
                redact(
                    validation_failed(
                        f"The resource '{instance.definition.type}/{instance.name}' at path "
                        f"'{instance.definition.path}' is defined multiple times in a template. Please see "
                        f"{RESOURCES_HELP} for usage details."
                    ),
                    secrets,
                ),
                path=instance.definition.path,
            )
        seen[key] = instance


def _add(target: list[str], resource_id_text: str) -> None:
    if resource_id_text.casefold() not in (t.casefold() for t in target):
        target.append(resource_id_text)


def _explicit_dependencies(instance: _Instance, targets: _Targets, secrets: frozenset[str]) -> None:
    definition = instance.definition
    for node in definition.depends_on:
        try:
            text = evaluate_node(node, instance.scope)
        except ExpressionError as exc:
            raise wrap_error(exc, _describe_static(definition), node.path, secrets) from exc
        if not isinstance(text, str) or not text:
            raise _resource_error(
                definition, "a dependsOn entry must evaluate to a non-empty string", secrets, node.path
            )
        matches = targets.match(text)
        if not matches:
            raise TemplateError(
                redact(
                    validation_failed(
                        f"The resource '{text}' is not defined in the template. Please see {RESOURCES_HELP} "
                        "for usage details."
                    ),
                    secrets,
                ),
                path=node.path,
            )
        for match in matches:
            # A resource whose condition is false is dropped from dependsOn, as in ARM.
            if match.included and not match.definition.existing and match.id:
                _add(instance.explicit, match.id)


def _implicit_dependencies(instance: _Instance, by_id: Mapping[str, _Instance]) -> None:
    if instance.parent is not None and instance.parent.included and instance.parent.id:
        _add(instance.implicit, instance.parent.id)
    if instance.extension_scope and instance.extension_scope.casefold() in by_id:
        _add(instance.implicit, by_id[instance.extension_scope.casefold()].id)
    runtime_scope = replace(instance.scope, permissions=RUNTIME)
    for call in discover_runtime_calls((instance.definition.body,), runtime_scope):
        target = by_id.get(call.resource_id.casefold())
        if target is not None and target is not instance and target.id:
            _add(instance.implicit, target.id)


def _serial_batches(instances: list[_Instance]) -> None:
    loops: dict[tuple[int, int], list[_Instance]] = {}
    for instance in instances:
        if instance.copy is not None and instance.copy.mode == "Serial":
            key = (id(instance.definition), id(instance.parent))
            loops.setdefault(key, []).append(instance)
    for members in loops.values():
        batches: dict[int, list[_Instance]] = {}
        for instance in members:
            position = instance.copy.index // instance.copy.batch_size if instance.copy else 0
            batches.setdefault(position, []).append(instance)
        for batch, batch_members in batches.items():
            for instance in batch_members:
                for previous in batches.get(batch - 1, []):
                    _add(instance.implicit, previous.id)


def _dependencies(instance: _Instance) -> list[str]:
    merged: list[str] = []
    for dep in [*instance.explicit, *instance.implicit]:
        _add(merged, dep)
    return merged


def _topological(instances: list[_Instance], secrets: frozenset[str]) -> list[_Instance]:
    by_id = {i.id.casefold(): i for i in instances if i.id}
    deps = {
        i.id.casefold(): [d.casefold() for d in _dependencies(i) if d.casefold() in by_id]
        for i in instances
        if i.id
    }
    done: set[str] = set()
    ordered: list[_Instance] = []
    remaining = sorted(instances, key=lambda i: i.order)
    while remaining:
        ready = [i for i in remaining if all(d in done for d in deps[i.id.casefold()])]
        if not ready:
            cycle = _find_cycle(deps, {i.id.casefold() for i in remaining})
            names = [by_id[c].id for c in cycle]
            raise TemplateError(
                redact(
                    validation_failed(
                        f"Circular dependency detected on resource: '{names[0]}'. The dependency cycle is: "
                        f"{' -> '.join(repr(n) for n in [*names, names[0]])}. Please see {RESOURCES_HELP} "
                        "for usage details."
                    ),
                    secrets,
                ),
                path=by_id[cycle[0]].definition.path,
            )
        for instance in ready:
            done.add(instance.id.casefold())
            ordered.append(instance)
        remaining = [i for i in remaining if i.id.casefold() not in done]
    return ordered


def _find_cycle(deps: Mapping[str, list[str]], candidates: set[str]) -> list[str]:
    """A dependency cycle among ``candidates`` (which contain one), in dependency order."""
    start = min(candidates)
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(d for d in deps[node] if d in candidates)
    return path[position[node] :]


def _plan_resource(instance: _Instance, secrets: frozenset[str]) -> PlannedResource:
    definition = instance.definition
    scope = replace(instance.scope, permissions=RUNTIME)
    resource_id_text = instance.id

    def describe(inner: str) -> str:
        return (
            f"Unable to process template language expressions for resource '{resource_id_text}' at path "
            f"'{definition.path}'. '{inner}'"
        )

    def compute(eval_scope: Scope) -> Json:
        return evaluate_node(definition.body, eval_scope)

    known: tuple[Json] | None = None
    try:
        known = (evaluate_node(definition.body, scope),)
    except MissingRuntimeValue:
        known = None
    except ExpressionError as exc:
        raise wrap_error(exc, _describe_static(definition), definition.path, secrets) from exc
    parsed = parse_id(instance.id)
    return PlannedResource(
        id=instance.id,
        type=definition.type,
        name=instance.name,
        resource_type=parsed.resource_type if parsed else definition.type,
        resource_name=parsed.name if parsed else instance.name,
        api_version=instance.api_version or "",
        body=LazyValue(
            compute, scope, nodes=(definition.body,), describe=describe, path=definition.path, known=known
        ),
        depends_on=tuple(_dependencies(instance)),
        explicit_depends_on=tuple(instance.explicit),
        scope=instance.extension_scope,
        copy=instance.copy,
        symbolic_name=definition.symbolic_name,
        template_path=definition.path,
    )


def _plan_output(output: OutputDefinition, scope: Scope) -> PlannedOutput:
    def describe(inner: str) -> str:
        return f"The template output '{output.name}' is not valid: {inner}."

    def compute(eval_scope: Scope) -> Json:
        if output.copy_count is not None and output.copy_input is not None:
            count = evaluate_loop_count(output.copy_count, eval_scope, f"template output '{output.name}'")
            loop_name = f"output:{output.name}"
            return [
                evaluate_node(output.copy_input, eval_scope.with_loop(loop_name, i, current=True))
                for i in range(count)
            ]
        assert output.value is not None  # noqa: S101 - parse_template requires value or copy
        return evaluate_node(output.value, eval_scope)

    nodes = tuple(n for n in (output.value, output.copy_count, output.copy_input) if n is not None)
    value = LazyValue(compute, scope, nodes=nodes, describe=describe, path=output.path)
    condition = None
    if output.condition is not None:
        condition_node = output.condition

        def compute_condition(eval_scope: Scope) -> Json:
            return evaluate_node(condition_node, eval_scope)

        condition = LazyValue(
            compute_condition, scope, nodes=(condition_node,), describe=describe, path=condition_node.path
        )
    return PlannedOutput(output.name, output.type, value, condition)


__all__ = [
    "CopyPosition",
    "DeploymentPlan",
    "LazyValue",
    "PlannedOutput",
    "PlannedResource",
    "expand",
]
