"""``Microsoft.Resources/deployments`` and their operations, at resource-group and subscription scope.

PUT accepts the deployment synchronously (template errors are a 400 and nothing is written),
then runs it as a long-running operation whose status carries ``DeploymentFailed`` with each
failed resource's own error in ``details``. Deployment operations are listed at
``/subscriptions/{s}/resourcegroups/{rg}/deployments/{name}/operations`` (no ``providers``
segment, as Azure serves them; the edge maps that path here) and at the ``providers`` form.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from moorage.arm.cloud import cloud_metadata
from moorage.arm.dispatch import caller_of
from moorage.arm.ids import ResourceRef
from moorage.arm.lro import Operation, Operations
from moorage.arm.resources.base import (
    ActionResult,
    CallContext,
    DeleteResult,
    OperationCatalog,
    PutResult,
    ResourceProvider,
)
from moorage.arm.resources.resource_groups import rg_not_found
from moorage.arm.store import ArmStore
from moorage.core.errors import InvalidArgument, NotFound
from moorage.deployments.plan import DeploymentScope
from moorage.deployments.service import RESOURCE_TYPE, Deployments

NAMESPACE = "Microsoft.Resources"
RUN_KIND = "deployment"
DELETE_KIND = "deployment-delete"


class DeploymentsProvider(ResourceProvider):
    resource_type = RESOURCE_TYPE
    actions: ClassVar[dict[str, str]] = {
        "validate": "POST",
        "cancel": "POST",
        "exportTemplate": "POST",
        "whatIf": "POST",
    }
    # ``az deployment group create`` splices the template file's text into the body as-is:
    # an unquoted key, and JSONC comments from the file (see moorage.core.jsonc).
    lenient_json: ClassVar[bool] = True

    def __init__(self, store: ArmStore, operations: Operations, service: Deployments) -> None:
        self._store = store
        self._operations = operations
        self._service = service
        operations.register(RUN_KIND, self._run)
        operations.register(DELETE_KIND, self._run_delete)

    async def _run(self, op: Operation) -> None:
        scope = DeploymentScope(**op.params["scope"])
        await self._service.run(
            op.resource_id.lower(), int(op.params["generation"]), scope, op.params["base_url"]
        )

    async def _run_delete(self, op: Operation) -> None:
        await self._service.delete(op.resource_id)

    async def _scope(self, ctx: CallContext, ref: ResourceRef, body: Any = None) -> DeploymentScope:
        sub = ctx.subscription
        group_location: str | None = None
        group_tags: dict[str, str] = {}
        group_name = ref.resource_group
        if group_name is not None:
            group = await self._store.resource_group(sub.id, group_name)
            if group is None:
                raise rg_not_found(group_name)
            group_name, group_location, group_tags = group.name, group.location, dict(group.tags or {})
        location = body.get("location") if isinstance(body, dict) else None
        if not isinstance(location, str) or not location:
            location = None
        return DeploymentScope(
            subscription_id=sub.id,
            subscription_name=sub.display_name,
            tenant_id=sub.tenant_id,
            deployment_name=ref.name,
            resource_group=group_name,
            resource_group_location=group_location,
            resource_group_tags=group_tags,
            # A subscription-scope deployment has a location of its own (deployment().location).
            location=location,
            environment=cloud_metadata(ctx.base_url, sub.tenant_id),
        )

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        scope = await self._scope(ctx, ref, body)
        deployment, created = await self._service.accept(scope, body, caller_of(ctx.caller), ctx.base_url)
        operation = await self._operations.start(
            RUN_KIND,
            subscription_id=ctx.subscription.id,
            namespace=NAMESPACE,
            location=scope.resource_group_location or scope.location or "global",
            resource_id=deployment.id,
            params={
                "generation": deployment.generation,
                "scope": dataclasses.asdict(scope),
                "base_url": ctx.base_url,
            },
        )
        current = await self._service.get(deployment.id)
        return PutResult(current.body(), created, operation=operation)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        return (await self._service.get(ref.id)).body()

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        if (
            ref.resource_group is not None
            and await self._store.resource_group(ctx.subscription.id, ref.resource_group) is None
        ):
            raise rg_not_found(ref.resource_group)
        return [
            d.body() for d in await self._service.list_deployments(ctx.subscription.id, ref.resource_group)
        ]

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        """202 + Location (Azure deletes deployments asynchronously), 204 when there is none;
        a running deployment is refused at once (Conflict)."""
        deployment = await self._service.find(ref.id)
        if deployment is None:
            return DeleteResult(existed=False)
        self._service.check_deletable(deployment)
        operation = await self._operations.start(
            DELETE_KIND,
            subscription_id=ctx.subscription.id,
            namespace=NAMESPACE,
            location=deployment.location or "global",
            resource_id=deployment.id,
        )
        return DeleteResult(existed=True, operation=operation)

    async def action(self, ctx: CallContext, ref: ResourceRef, name: str, body: Any) -> ActionResult:
        if name == "validate":
            scope = await self._scope(ctx, ref, body)
            return ActionResult(
                await self._service.validate(scope, body, caller_of(ctx.caller), ctx.base_url)
            )
        if name == "whatIf":
            scope = await self._scope(ctx, ref, body)
            return ActionResult(await self._service.what_if(scope, body, caller_of(ctx.caller), ctx.base_url))
        if name == "cancel":
            await self._service.cancel(ref.id)
            return ActionResult(status=204)
        if name == "exportTemplate":
            return ActionResult(await self._service.export_template(ref.id))
        raise NotFound(f"The action '{name}' is not supported.", code="InvalidResourceType")

    async def rendered_resource(
        self, ctx: CallContext, deployment: ResourceRef, resource_id: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The PUT body the deployment ``deployment`` sends for ``resource_id`` (with its secure
        parameters: for ``moorage diagnose`` of a refused resource only)."""
        found = await self._service.get(deployment.id)
        scope = await self._scope(ctx, deployment, {"location": found.location})
        return await self._service.rendered_resource(deployment.id, resource_id, scope, ctx.base_url)

    async def on_scope_deleted(self, ctx: CallContext, scope: str) -> None:
        parts = [p for p in scope.split("/") if p]
        if len(parts) == 4 and parts[2].lower() == "resourcegroups":
            await self._service.forget_scope(parts[1], parts[3])

    def operation_catalog(self) -> OperationCatalog:
        def entry(operation: str, title: str) -> dict[str, Any]:
            return {
                "name": f"{NAMESPACE}/{operation}",
                "display": {
                    "provider": "Microsoft Resources",
                    "resource": "Deployment",
                    "operation": title,
                    "description": title + ".",
                },
                "origin": "user,system",
            }

        return [
            entry("deployments/read", "Get deployment"),
            entry("deployments/write", "Create or update deployment"),
            entry("deployments/delete", "Delete deployment"),
            entry("deployments/cancel/action", "Cancel deployment"),
            entry("deployments/validate/action", "Validate deployment"),
            entry("deployments/exportTemplate/action", "Export template"),
            entry("deployments/whatIf/action", "Predict template changes"),
            entry("deployments/operations/read", "Get deployment operation"),
        ]


class DeploymentOperationsProvider(ResourceProvider):
    """``deployments/{name}/operations[/{operationId}]`` (read only)."""

    resource_type = f"{RESOURCE_TYPE}/operations"

    def __init__(self, service: Deployments) -> None:
        self._service = service

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        return await self._service.operation(ref.parent().id, ref.name)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        items = await self._service.operations(ref.parent().id)
        top = ctx.query.get("$top")
        if top:
            if not top.isdigit():
                raise InvalidArgument(
                    f"The value '{top}' of the query parameter '$top' is invalid; it must be a "
                    "non-negative integer.",
                    code="InvalidParameter",
                    target="$top",
                )
            items = items[: int(top)]
        return items


class DeploymentOperationStatusesProvider(ResourceProvider):
    """``deployments/{name}/operationStatuses/{id}``: the status of the deployment's long-running
    operation at the path Azure uses (the generic location-scoped path serves it too)."""

    resource_type = f"{RESOURCE_TYPE}/operationStatuses"

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    def permission(self, method: str, action: str | None = None) -> str:
        return f"{RESOURCE_TYPE}/read"

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        operation = await self._operations.get(ctx.subscription.id, ref.name)
        if operation.resource_id.lower() != ref.parent().id.lower():
            raise NotFound(f"The operation '{ref.name}' could not be found.", code="OperationNotFound")
        return operation.status_body()


def deployment_providers(
    store: ArmStore, operations: Operations, service: Deployments
) -> list[ResourceProvider]:
    return [
        DeploymentsProvider(store, operations, service),
        DeploymentOperationsProvider(service),
        DeploymentOperationStatusesProvider(operations),
    ]
