"""Provider calls shared by the ARM edge and template deployments.

The edge and the deployment engine must reach a resource provider the same way — resolve the
provider for a type, check that the resource group exists, authorize the caller with RBAC — so
that a template cannot do what a direct request could not, nor fail differently. The
:class:`ProviderGateway` implements the deployments subsystem's ``ResourceGateway`` protocol on
top of these steps and additionally waits for long-running operations, turning every refusal
into an ``Outcome`` with the provider's ARM error body, as deployment operations show it.
"""

from __future__ import annotations

from typing import Any

from moorage.arm.envelopes import error_body, status_for
from moorage.arm.ids import ResourceRef, parse_provider_path, segments
from moorage.arm.lro import CANCELED, FAILED, Operation, Operations
from moorage.arm.resources.base import CallContext, ProviderRegistry, ResourceProvider, not_found
from moorage.arm.resources.resource_groups import ResourceGroups, rg_not_found
from moorage.arm.store import ArmStore
from moorage.core.errors import InvalidArgument, MoorageError, NotFound, PermissionDenied
from moorage.deployments.providers import STATUS_NAMES, Caller, ExistingResource, Outcome
from moorage.identity.records import PrincipalKind, TokenClaims
from moorage.identity.service import IdentityService

# api-versions used when a template gives none (``reference()`` of an existing resource, the
# deletes of Complete mode); every provider accepts any api-version.
DEFAULT_API_VERSIONS = {
    "microsoft.containerinstance": "2023-05-01",
    "microsoft.containerregistry": "2023-07-01",
    "microsoft.managedidentity": "2023-01-31",
    "microsoft.authorization": "2022-04-01",
    "microsoft.resources": "2025-04-01",
}


async def authorize(identity: IdentityService, claims: TokenClaims, action: str, scope: str) -> None:
    """Raise ARM's ``AuthorizationFailed`` unless ``claims`` may perform ``action`` at ``scope``."""
    if not await identity.is_authorized(claims.object_id, action, scope):
        raise PermissionDenied(
            f"The client '{claims.object_id}' with object id '{claims.object_id}' does not have "
            f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.",
            code="AuthorizationFailed",
        )


def caller_of(claims: TokenClaims) -> dict[str, Any]:
    """The claims a deployment keeps to act as its caller later (never the token itself)."""
    return {
        "tenant_id": claims.tenant_id,
        "object_id": claims.object_id,
        "app_id": claims.app_id,
        "audience": claims.audience,
        "issuer": claims.issuer,
        "expires_at": claims.expires_at,
        "kind": str(claims.kind),
        "resource_id": claims.resource_id,
    }


def claims_of(caller: Caller) -> TokenClaims:
    kind = PrincipalKind(str(caller["kind"]))
    return TokenClaims(
        tenant_id=str(caller["tenant_id"]),
        object_id=str(caller["object_id"]),
        app_id=str(caller["app_id"]),
        audience=str(caller["audience"]),
        issuer=str(caller["issuer"]),
        expires_at=int(caller["expires_at"]),
        kind=kind,
        resource_id=caller.get("resource_id"),
        raw={},
    )


class ProviderGateway:
    """``ResourceGateway`` for deployments: provider calls as the deployment's caller."""

    def __init__(
        self,
        store: ArmStore,
        identity: IdentityService,
        operations: Operations,
        registry: ProviderRegistry,
    ) -> None:
        self._store = store
        self._identity = identity
        self._operations = operations
        self._registry = registry

    async def _context(
        self, caller: Caller, base_url: str, ref: ResourceRef, api_version: str
    ) -> CallContext:
        claims = claims_of(caller)
        subscription = await self._store.subscription(ref.subscription_id or "")
        if subscription is None:
            raise NotFound(
                f"The subscription '{ref.subscription_id}' could not be found.", code="SubscriptionNotFound"
            )
        return CallContext(
            caller=claims, subscription=subscription, api_version=api_version, base_url=base_url
        )

    def _resolve(self, resource_id: str) -> tuple[ResourceProvider, ResourceRef]:
        segs = segments(resource_id)
        low = [s.lower() for s in segs]
        if len(low) == 4 and low[0] == "subscriptions" and low[2] == "resourcegroups":
            provider = self._registry.get(ResourceGroups.resource_type)
            if provider is not None:
                return provider, ResourceGroups.ref(segs[1], segs[3])
        ref = parse_provider_path(resource_id)
        if ref is None or ref.is_collection or not ref.subscription_id:
            raise InvalidArgument(
                f"The resource id '{resource_id}' is not a valid resource id.", code="InvalidResourceId"
            )
        provider = self._registry.get(ref.resource_type)
        if provider is None:
            raise NotFound(
                f"The resource type '{'/'.join(ref.types)}' could not be found in the namespace "
                f"'{ref.namespace}'.",
                code="NoRegisteredProviderFound",
            )
        return provider, ref

    async def _prepare(
        self,
        caller: Caller,
        base_url: str,
        resource_id: str,
        api_version: str,
        *,
        method: str,
        action: str | None = None,
    ) -> tuple[ResourceProvider, ResourceRef, CallContext]:
        provider, ref = self._resolve(resource_id)
        ctx = await self._context(caller, base_url, ref, api_version)
        if ref.resource_group is not None and provider.resource_type != ResourceGroups.resource_type:
            group = await self._store.resource_group(ctx.subscription.id, ref.resource_group)
            if group is None:
                raise rg_not_found(ref.resource_group)
        await authorize(self._identity, ctx.caller, provider.permission(method, action), ref.id)
        return provider, ref, ctx

    async def _settle(self, ctx: CallContext, operation: Operation | None) -> dict[str, Any] | None:
        """Wait for a long-running operation; its error body when it failed or was canceled."""
        if operation is None:
            return None
        final = await self._operations.wait(ctx.subscription.id, operation.id)
        if final.status in (FAILED, CANCELED):
            return final.error or {"code": "OperationFailed", "message": "The operation failed."}
        return None

    async def put(
        self, caller: Caller, base_url: str, resource_id: str, api_version: str, body: dict[str, Any]
    ) -> Outcome:
        try:
            provider, ref, ctx = await self._prepare(caller, base_url, resource_id, api_version, method="PUT")
            result = await provider.put(ctx, ref, body)
            error = await self._settle(ctx, result.operation)
            if error is not None:
                # A long-running PUT that failed after it was accepted (Azure shows Conflict).
                return Outcome("Conflict", error=error)
            current = await provider.get(ctx, ref)
        except MoorageError as refusal:
            return Outcome(STATUS_NAMES.get(status_for(refusal), "BadRequest"), error=error_body(refusal))
        return Outcome("Created" if result.created else "OK", body=current)

    async def preflight(
        self, caller: Caller, base_url: str, resource_id: str, api_version: str, body: dict[str, Any]
    ) -> None:
        provider, ref = self._resolve(resource_id)
        ctx = await self._context(caller, base_url, ref, api_version)
        await provider.preflight(ctx, ref, body)

    async def get(self, caller: Caller, base_url: str, resource_id: str, api_version: str) -> dict[str, Any]:
        provider, ref, ctx = await self._prepare(caller, base_url, resource_id, api_version, method="GET")
        return await provider.get(ctx, ref)

    async def action(
        self, caller: Caller, base_url: str, resource_id: str, api_version: str, *, action: str, body: Any
    ) -> Any:
        provider, ref = self._resolve(resource_id)
        declared = {k.lower(): k for k in provider.actions}
        name = declared.get(action.lower())
        if name is None or provider.actions[name] != "POST":
            raise not_found(ref.as_collection_plus(action))
        provider, ref, ctx = await self._prepare(
            caller, base_url, resource_id, api_version, method="POST", action=name
        )
        result = await provider.action(ctx, ref, name, body)
        error = await self._settle(ctx, result.operation)
        if error is not None:
            raise InvalidArgument(str(error.get("message")), code=str(error.get("code")))
        return result.body

    async def delete(self, caller: Caller, base_url: str, resource_id: str, api_version: str) -> Outcome:
        try:
            provider, ref, ctx = await self._prepare(
                caller, base_url, resource_id, api_version, method="DELETE"
            )
            result = await provider.delete(ctx, ref)
            error = await self._settle(ctx, result.operation)
            if error is not None:
                return Outcome("Conflict", error=error)
        except MoorageError as refusal:
            return Outcome(STATUS_NAMES.get(status_for(refusal), "BadRequest"), error=error_body(refusal))
        return Outcome("OK" if result.existed else "NoContent")

    async def resources_in_group(
        self, caller: Caller, subscription_id: str, resource_group: str
    ) -> list[ExistingResource]:
        items = await self._store.list_resources(
            subscription_id, resource_group=resource_group, top_level_only=True
        )
        return [ExistingResource(i.id, i.type) for i in items]

    async def api_version_for(self, resource_type: str) -> str:
        return DEFAULT_API_VERSIONS.get(resource_type.split("/", 1)[0].lower(), "2023-01-01")
