"""``Microsoft.ManagedIdentity/userAssignedIdentities``: an ARM resource backed by a principal.

PUT is synchronous (201 create, 200 update), as in Azure. The principal behind the identity is
created with the resource and removed with it.
"""

from __future__ import annotations

import re
from typing import Any

from moorage.arm.ids import ResourceRef, normalize_location
from moorage.arm.resources.base import (
    CallContext,
    DeleteResult,
    PutResult,
    ResourceProvider,
    not_found,
    parse_tags,
    render_tracked,
    require_object,
)
from moorage.arm.store import ArmStore
from moorage.core.errors import InvalidArgument
from moorage.identity.service import IdentityService

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
ISOLATION_SCOPES = ("None", "Regional")


class UserAssignedIdentities(ResourceProvider):
    resource_type = "Microsoft.ManagedIdentity/userAssignedIdentities"

    def __init__(self, store: ArmStore, identity: IdentityService) -> None:
        self._store = store
        self._identity = identity

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        if not _NAME.match(ref.name):
            raise InvalidArgument(
                f"Resource name {ref.name} is invalid. The name can be between 3 and 128 characters "
                "long and can contain only letters, numbers, hyphens and underscores. The first "
                "character must be a letter or number.",
                code="InvalidResourceName",
            )
        location = body.get("location")
        if not isinstance(location, str) or not location.strip():
            raise InvalidArgument(
                "The location property is required for this definition.", code="LocationRequired"
            )
        tags = parse_tags(body.get("tags"))
        props = require_object(body.get("properties"), "properties")
        isolation = props.get("isolationScope")
        if isolation is not None and isolation not in ISOLATION_SCOPES:
            raise InvalidArgument(
                f"The value '{isolation}' of isolationScope is not valid; use None or Regional.",
                code="InvalidRequestContent",
                target="properties.isolationScope",
            )
        existing = await self._store.resource(ref.id)
        if existing and normalize_location(existing.location or "") != normalize_location(location):
            raise InvalidArgument(
                f"The resource '{ref.name}' already exists in location '{existing.location}' in "
                f"resource group '{ref.resource_group}'. A resource with the same name cannot be "
                f"created in location '{normalize_location(location)}'. Please select a new "
                "resource name.",
                code="InvalidResourceLocation",
            )
        principal = await self._identity.ensure_managed_identity(
            ctx.subscription.tenant_id, existing.id if existing else ref.id, ref.name
        )
        properties: dict[str, Any] = {
            "tenantId": principal.tenant_id,
            "principalId": principal.object_id,
            "clientId": principal.app_id,
        }
        if isolation is not None:
            properties["isolationScope"] = isolation
        stored, created = await self._store.put_resource(
            resource_id=ref.id,
            subscription_id=ctx.subscription.id,
            resource_group=ref.resource_group,
            type_=self.resource_type,
            name=ref.name,
            location=normalize_location(location),
            tags=tags,
            body={"properties": properties},
        )
        return PutResult(render_tracked(stored), created)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        stored = await self._store.resource(ref.id)
        if stored is None:
            raise not_found(ref)
        return render_tracked(stored)

    async def patch(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> dict[str, Any]:
        stored = await self._store.resource(ref.id)
        if stored is None:
            raise not_found(ref)
        tags = parse_tags(body.get("tags")) if "tags" in body else stored.tags
        updated, _ = await self._store.put_resource(
            resource_id=stored.id,
            subscription_id=ctx.subscription.id,
            resource_group=ref.resource_group,
            type_=self.resource_type,
            name=stored.name,
            location=stored.location,
            tags=tags,
            body=stored.body,
        )
        return render_tracked(updated)

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        stored = await self._store.resource(ref.id)
        if stored is None:
            return DeleteResult(existed=False)
        await self._identity.delete_managed_identity(stored.id)
        await self._store.delete_resource(stored.id)
        return DeleteResult(existed=True)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        items = await self._store.list_resources(
            ctx.subscription.id, resource_group=ref.resource_group, type_=self.resource_type
        )
        return [render_tracked(i) for i in items]
