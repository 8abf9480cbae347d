"""``Microsoft.Resources/resourceGroups`` (subscription scope) and the generic resource listings.

Deleting a group is a long-running operation that deletes every resource in it through its own
provider (so each cleans up what it owns), then the role assignments scoped inside it.
"""

from __future__ import annotations

import re
from typing import Any

from moorage.arm.ids import ResourceRef, normalize_location, parse_resource_id, resource_group_id
from moorage.arm.lro import Operation, Operations
from moorage.arm.resources.base import (
    CallContext,
    DeleteResult,
    ProviderRegistry,
    PutResult,
    ResourceProvider,
    parse_tags,
    require_object,
)
from moorage.arm.store import ArmStore, ResourceGroup, StoredResource
from moorage.core.errors import Conflict, InvalidArgument, NotFound
from moorage.identity.records import PrincipalKind, TokenClaims

_RG_NAME = re.compile(r"^[-\w._()]{1,90}$", re.UNICODE)
DELETE_KIND = "resourceGroups/delete"


def rg_not_found(name: str) -> NotFound:
    return NotFound(f"Resource group '{name}' could not be found.", code="ResourceGroupNotFound")


def render_group(group: ResourceGroup) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "properties": {"provisioningState": group.provisioning_state},
    }
    if group.tags is not None:
        body["tags"] = group.tags
    if group.managed_by:
        body["managedBy"] = group.managed_by
    return body


def render_generic(res: StoredResource) -> dict[str, Any]:
    """The GenericResource shape of ``.../resources`` listings."""
    out: dict[str, Any] = {"id": res.id, "name": res.name, "type": res.type}
    if res.location is not None:
        out["location"] = res.location
    if res.tags:
        out["tags"] = res.tags
    for key in ("sku", "kind", "identity", "managedBy", "zones"):
        if key in res.body:
            out[key] = res.body[key]
    out["createdTime"] = res.created_at.isoformat().replace("+00:00", "Z")
    out["changedTime"] = res.changed_at.isoformat().replace("+00:00", "Z")
    return out


def system_claims(tenant_id: str, object_id: str) -> TokenClaims:
    """Claims for work the platform does on a caller's behalf after the request has ended."""
    return TokenClaims(
        tenant_id=tenant_id,
        object_id=object_id,
        app_id="",
        audience="",
        issuer="moorage",
        expires_at=0,
        kind=PrincipalKind.APPLICATION,
        resource_id=None,
        raw={},
    )


class ResourceGroups(ResourceProvider):
    resource_type = "Microsoft.Resources/resourceGroups"
    scope = "subscription"

    def __init__(self, store: ArmStore, operations: Operations, registry: ProviderRegistry) -> None:
        self._store = store
        self._operations = operations
        self._registry = registry
        operations.register(DELETE_KIND, self._run_delete)

    def permission(self, method: str, action: str | None = None) -> str:
        verb = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
        return f"Microsoft.Resources/subscriptions/resourceGroups/{verb.get(method, 'action')}"

    @staticmethod
    def ref(subscription_id: str, name: str) -> ResourceRef:
        return ResourceRef(
            subscription_id,
            name,
            f"/subscriptions/{subscription_id}",
            "Microsoft.Resources",
            ("resourceGroups",),
            (name,),
        )

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        name = ref.name
        if not _RG_NAME.match(name) or name.endswith("."):
            bad = sorted({c for c in name if not re.match(r"[-\w._()]", c, re.UNICODE)})
            detail = f" has these invalid characters: '{''.join(bad)}'" if bad else " is invalid"
            raise InvalidArgument(
                f"The provided resource group name '{name}'{detail}. The name can only be a letter, "
                "digit, '-', '.', '(', ')' or '_', can be up to 90 characters long, and cannot end "
                "in a period.",
                code="InvalidResourceGroup",
            )
        location = body.get("location")
        if not isinstance(location, str) or not location.strip():
            raise InvalidArgument(
                "The location property is required for this definition.", code="LocationRequired"
            )
        tags = parse_tags(body.get("tags"))
        require_object(body.get("properties"), "properties")
        managed_by = body.get("managedBy")
        existing = await self._store.resource_group(ctx.subscription.id, name)
        if existing is not None:
            if existing.provisioning_state == "Deleting":
                raise Conflict(
                    f"The resource group '{existing.name}' is in deprovisioning state and cannot "
                    "perform this operation.",
                    code="ResourceGroupBeingDeleted",
                )
            if normalize_location(location) != existing.location:
                raise InvalidArgument(
                    f"Invalid resource group location '{normalize_location(location)}'. The "
                    f"Resource group already exists in location '{existing.location}'.",
                    code="InvalidResourceGroupLocation",
                )
        group = ResourceGroup(
            ctx.subscription.id,
            existing.name if existing else name,
            normalize_location(location),
            tags if tags is not None else (existing.tags if existing else None),
            managed_by if isinstance(managed_by, str) else None,
            "Succeeded",
        )
        created = await self._store.put_resource_group(group)
        return PutResult(render_group(group), created)

    async def _group(self, ctx: CallContext, name: str) -> ResourceGroup:
        group = await self._store.resource_group(ctx.subscription.id, name)
        if group is None:
            raise rg_not_found(name)
        return group

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        return render_group(await self._group(ctx, ref.name))

    async def patch(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> dict[str, Any]:
        group = await self._group(ctx, ref.name)
        tags = parse_tags(body.get("tags")) if "tags" in body else group.tags
        updated = ResourceGroup(
            group.subscription_id,
            group.name,
            group.location,
            tags,
            group.managed_by,
            group.provisioning_state,
        )
        await self._store.put_resource_group(updated)
        return render_group(updated)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        return [render_group(g) for g in await self._store.resource_groups(ctx.subscription.id)]

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        group = await self._group(ctx, ref.name)
        if group.provisioning_state != "Deleting":
            await self._store.set_resource_group_state(ctx.subscription.id, group.name, "Deleting")
        operation = await self._operations.start(
            DELETE_KIND,
            subscription_id=ctx.subscription.id,
            namespace="Microsoft.Resources",
            location=group.location,
            resource_id=group.id,
            params={
                "name": group.name,
                "tenant_id": ctx.subscription.tenant_id,
                "caller": ctx.caller.object_id,
                "api_version": ctx.api_version,
                "base_url": ctx.base_url,
            },
        )
        return DeleteResult(existed=True, operation=operation)

    async def _run_delete(self, op: Operation) -> None:
        subscription = await self._store.subscription(op.subscription_id)
        if subscription is None:
            return
        params = op.params
        ctx = CallContext(
            caller=system_claims(str(params["tenant_id"]), str(params["caller"])),
            subscription=subscription,
            api_version=str(params.get("api_version", "")),
            base_url=str(params.get("base_url", "")),
        )
        name = str(params["name"])
        members = await self._store.list_resources(subscription.id, resource_group=name, top_level_only=True)
        # Newest first: dependants are usually created after what they depend on.
        for res in reversed(members):
            provider = self._registry.get(res.type)
            ref = parse_resource_id(res.id)
            if provider is not None:
                await provider.delete(ctx, ref)
            else:
                await self._store.delete_resource(res.id)
        scope = resource_group_id(subscription.id, name)
        for provider in self._registry.all():
            await provider.on_scope_deleted(ctx, scope)
        await self._store.delete_resource_group(subscription.id, name)


def parse_resource_filter(expression: str) -> dict[str, str]:
    """The subset of ``$filter`` that resource listings support: ``resourceType eq '…'``,
    ``name eq '…'``, ``location eq '…'``, ``tagName eq '…'`` joined by ``and``."""
    found: dict[str, str] = {}
    if not expression.strip():
        return found
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = re.fullmatch(r"\s*(\w+)\s+eq\s+'([^']*)'\s*", clause)
        if not match or match.group(1).lower() not in (
            "resourcetype",
            "name",
            "location",
            "tagname",
            "tagvalue",
        ):
            raise InvalidArgument(
                f"Invalid $filter '{expression}'. Supported: resourceType, name, location, tagName, "
                "tagValue with 'eq', joined by 'and'.",
                code="InvalidFilterInQueryString",
            )
        found[match.group(1).lower()] = match.group(2)
    return found


def filter_resources(items: list[StoredResource], flt: dict[str, str]) -> list[StoredResource]:
    def keep(res: StoredResource) -> bool:
        if "resourcetype" in flt and res.type.lower() != flt["resourcetype"].lower():
            return False
        if "name" in flt and res.name.lower() != flt["name"].lower():
            return False
        if "location" in flt and (res.location or "") != normalize_location(flt["location"]):
            return False
        if "tagname" in flt:
            tags = res.tags or {}
            if flt["tagname"] not in tags:
                return False
            if "tagvalue" in flt and tags[flt["tagname"]] != flt["tagvalue"]:
                return False
        return True

    return [r for r in items if keep(r)]
