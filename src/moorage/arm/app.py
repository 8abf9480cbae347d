"""The ARM edge: authenticates every request, routes it case-insensitively, authorizes it with
RBAC, and hands it to one resource provider; maps results to ARM's status codes and headers.

Paths served::

    /subscriptions[/{sub}]                                   subscriptions (GET)
    /subscriptions/{sub}/resourcegroups[/{rg}]               resource groups
    /subscriptions/{sub}/resources, .../resourcegroups/{rg}/resources   generic listings
    /subscriptions/{sub}/providers[/{ns}]                    provider registrations
    /subscriptions/{sub}/locations                           locations
    .../providers/{ns}/locations/{loc}/operationStatuses|operationResults/{id}   LRO
    {scope}/providers/{ns}/{type}/{name}[/...][/{action}]    provider resources (incl. extension)
    /tenants, /metadata/endpoints
    /providers/{ns}/operations                               a namespace's operations catalog
    /subscriptions/{sub}/providers/{ns}/{name}              extensions (Moorage.Diagnostics)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from moorage.arm.cloud import cloud_metadata
from moorage.arm.dispatch import authorize
from moorage.arm.envelopes import arm_error
from moorage.arm.ids import ResourceRef, parse_provider_path, segments
from moorage.arm.lro import IN_PROGRESS, SUCCEEDED, Operation, Operations
from moorage.arm.resources.base import (
    CallContext,
    DeleteResult,
    ProviderRegistry,
    PutResult,
    ResourceProvider,
    parse_json_body,
)
from moorage.arm.resources.resource_groups import (
    ResourceGroups,
    filter_resources,
    parse_resource_filter,
    render_generic,
    rg_not_found,
)
from moorage.arm.store import ArmStore, Subscription
from moorage.core.errors import (
    InvalidArgument,
    NotFound,
    NotSupported,
    Unauthenticated,
)
from moorage.edge import base_url, guarded, json_response
from moorage.identity import roles
from moorage.identity.records import TokenClaims
from moorage.identity.service import MANAGEMENT_AUDIENCES, IdentityService

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-[A-Za-z0-9.]+)?$")
ALL_METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"]
Extension = Callable[[Request, CallContext], Awaitable[Response]]

# Locations offered by /subscriptions/{sub}/locations; any location name is accepted on PUT.
LOCATIONS = (
    ("westus", "West US"),
    ("eastus", "East US"),
    ("westeurope", "West Europe"),
    ("northeurope", "North Europe"),
    ("uksouth", "UK South"),
    ("local", "Local"),
)


def _subscription_body(sub: Subscription) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{sub.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": sub.state,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


class ArmEdge:
    def __init__(  # noqa: PLR0917 - the composition root passes the edge's collaborators
        self,
        store: ArmStore,
        identity: IdentityService,
        operations: Operations,
        registry: ProviderRegistry,
        resource_groups: ResourceGroups,
        default_tenant: Callable[[], Awaitable[str]],
        extensions: Mapping[str, Extension] | None = None,
    ) -> None:
        # Subscription-level endpoints outside any resource provider, by lower-cased
        # "namespace/name" (``providers/Moorage.Diagnostics/diagnose``); they authorize themselves.
        self._extensions = extensions if extensions is not None else {}
        self._store = store
        self._identity = identity
        self._operations = operations
        self._registry = registry
        self._groups = resource_groups
        self._default_tenant = default_tenant

    def routes(self) -> list[BaseRoute]:
        arm = guarded(arm_error)
        return [
            Route("/metadata/endpoints", arm(self.metadata_endpoints), methods=["GET"]),
            Route("/tenants", arm(self.tenants), methods=["GET"]),
            Route("/providers/{namespace}/operations", arm(self.provider_operations), methods=["GET"]),
            Route("/subscriptions", arm(self.handle), methods=ALL_METHODS),
            Route("/subscriptions/{rest:path}", arm(self.handle), methods=ALL_METHODS),
        ]

    # -- authentication ------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> TokenClaims:
        header = request.headers.get("authorization")
        if header is None:
            raise Unauthenticated("Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "Authentication failed. The 'Authorization' header is provided in an invalid format."
            )
        return self._identity.verify(token.strip(), MANAGEMENT_AUDIENCES)

    def _check_tenant(self, request: Request, claims: TokenClaims, sub: Subscription) -> None:
        request.state.expected_tenant = sub.tenant_id
        if claims.tenant_id != sub.tenant_id:
            authority = self._identity.authority
            raise Unauthenticated(
                f"The access token is from the wrong issuer '{claims.issuer}'. It must match the "
                f"tenant '{authority.issuer(sub.tenant_id)}' associated with this subscription. "
                f"Please use the authority (URL) '{base_url(request)}/{sub.tenant_id}' to get the "
                "token. Note, if the subscription is transferred to another tenant there is no "
                "impact to the services, but information about new tenant could take time to "
                "propagate (up to an hour). If you just transferred your subscription and see this "
                "error message, please try back later.",
                code="InvalidAuthenticationTokenTenant",
            )

    # -- authorization -------------------------------------------------------------------------

    async def _authorize(self, claims: TokenClaims, action: str, scope: str) -> None:
        await authorize(self._identity, claims, action, scope)

    async def _any_access(self, claims: TokenClaims, subscription_id: str) -> bool:
        """Whether the caller holds any role assignment that reaches into this subscription."""
        scope = f"/subscriptions/{subscription_id}"
        return any(
            roles.scope_contains(a.scope, scope) or roles.scope_contains(scope, a.scope)
            for a in await self._identity.assignments_of(claims.object_id)
        )

    # -- unauthenticated metadata ---------------------------------------------------------------

    async def metadata_endpoints(self, request: Request) -> Response:
        """The cloud metadata ``az cloud register --endpoint-resource-manager`` reads."""
        base = base_url(request)
        tenant = await self._default_tenant()
        return json_response(cloud_metadata(base, tenant))

    async def tenants(self, request: Request) -> Response:
        claims = self._authenticate(request)
        tenant = await self._identity.get_tenant(claims.tenant_id)
        return json_response(
            {
                "value": [
                    {
                        "id": f"/tenants/{tenant.id}",
                        "tenantId": tenant.id,
                        "tenantCategory": "Home",
                        "displayName": tenant.display_name,
                        "defaultDomain": f"{tenant.id}.moorage.local",
                        "domains": [f"{tenant.id}.moorage.local"],
                        "tenantType": "AAD",
                    }
                ]
            }
        )

    async def provider_operations(self, request: Request) -> Response:
        """``GET /providers/{namespace}/operations``: what the namespace's providers can do."""
        self._authenticate(request)
        namespace = request.path_params["namespace"].lower()
        providers = [p for p in self._registry.all() if p.resource_type.lower().startswith(namespace + "/")]
        if not providers:
            raise NotFound(
                f"The resource namespace '{request.path_params['namespace']}' is invalid.",
                code="InvalidResourceNamespace",
            )
        return json_response({"value": [entry for p in providers for entry in p.operation_catalog()]})

    # -- dispatch -------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request.state.request_id = str(uuid.uuid4())
        api_version = request.query_params.get("api-version", "")
        if not api_version:
            raise InvalidArgument(
                "The api-version query parameter (?api-version=) is required for all requests.",
                code="MissingApiVersionParameter",
            )
        if not _API_VERSION.match(api_version):
            raise InvalidArgument(
                f"The api-version '{api_version}' is invalid. The supported versions are dates in "
                "the form 'yyyy-mm-dd' with an optional '-preview' suffix.",
                code="InvalidApiVersionParameter",
            )
        claims = self._authenticate(request)
        segs = segments(request.url.path)
        method = request.method
        if len(segs) == 1:
            return await self._list_subscriptions(request, claims)
        subscription = await self._store.subscription(segs[1])
        if subscription is None:
            raise NotFound(f"The subscription '{segs[1]}' could not be found.", code="SubscriptionNotFound")
        self._check_tenant(request, claims, subscription)
        ctx = CallContext(
            caller=claims,
            subscription=subscription,
            api_version=api_version,
            base_url=base_url(request),
            request_id=request.state.request_id,
            query=dict(request.query_params),
        )
        rest = segs[2:]
        low = [s.lower() for s in rest]
        response = await self._route(request, ctx, method, rest, low)
        response.headers.setdefault("x-ms-request-id", request.state.request_id)
        response.headers.setdefault(
            "x-ms-correlation-request-id",
            request.headers.get("x-ms-client-request-id", request.state.request_id),
        )
        return response

    async def _route(
        self, request: Request, ctx: CallContext, method: str, rest: list[str], low: list[str]
    ) -> Response:
        sub = ctx.subscription
        if not rest:
            self._only(method, "GET")
            if not await self._any_access(ctx.caller, sub.id):
                await self._authorize(
                    ctx.caller, "Microsoft.Resources/subscriptions/read", f"/subscriptions/{sub.id}"
                )
            return json_response(_subscription_body(sub))
        if low == ["resourcegroups"]:
            self._only(method, "GET")
            return await self._list_groups(ctx)
        if len(low) == 2 and low[0] == "resourcegroups":
            return await self._resource_group(request, ctx, method, rest[1])
        if len(low) == 3 and low[0] == "resourcegroups" and low[2] == "resources":
            self._only(method, "GET")
            return await self._list_resources(ctx, rest[1])
        if low == ["resources"]:
            self._only(method, "GET")
            return await self._list_resources(ctx, None)
        if low == ["locations"]:
            self._only(method, "GET")
            return json_response({"value": [self._location(sub.id, n, d) for n, d in LOCATIONS]})
        if (
            low
            and low[0] == "providers"
            and (len(low) <= 2 or (len(low) == 3 and low[2] in ("register", "unregister")))
        ):
            return await self._providers(ctx, method, rest)
        if len(low) == 3 and low[0] == "providers" and f"{low[1]}/{low[2]}" in self._extensions:
            return await self._extensions[f"{low[1]}/{low[2]}"](request, ctx)
        if (
            len(low) == 6
            and low[0] == "providers"
            and low[2] == "locations"
            and low[4] in ("operationstatuses", "operationresults")
        ):
            self._only(method, "GET")
            op = await self._operations.get(sub.id, rest[5])
            return self._operation_response(ctx, op, result=low[4] == "operationresults")
        ref = parse_provider_path(request.url.path) or _deployment_operations_ref(sub.id, rest, low)
        if ref is None:
            raise NotFound(
                f"The requested path '{request.url.path}' is not an ARM resource path.",
                code="InvalidResourceType",
            )
        return await self._provider_request(request, ctx, method, ref)

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise NotSupported(
                f"The requested method '{method}' is not allowed here.", code="MethodNotAllowed"
            )

    @staticmethod
    def _location(sub_id: str, name: str, display: str) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub_id}/locations/{name}",
            "name": name,
            "displayName": display,
            "regionalDisplayName": display,
            "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
        }

    # -- subscriptions and groups ---------------------------------------------------------------

    async def _list_subscriptions(self, request: Request, claims: TokenClaims) -> Response:
        self._only(request.method, "GET")
        subs = [
            s
            for s in await self._store.subscriptions(claims.tenant_id)
            if await self._any_access(claims, s.id)
        ]
        return json_response({"value": [_subscription_body(s) for s in subs]})

    async def _list_groups(self, ctx: CallContext) -> Response:
        scope = f"/subscriptions/{ctx.subscription.id}"
        action = self._groups.permission("GET")
        items = await self._groups.list(ctx, ResourceGroups.ref(ctx.subscription.id, ""))
        if not await self._identity.is_authorized(ctx.caller.object_id, action, scope):
            # Only the groups the caller may read, as ARM filters listings.
            items = [
                i for i in items if await self._identity.is_authorized(ctx.caller.object_id, action, i["id"])
            ]
        return json_response({"value": items})

    async def _resource_group(self, request: Request, ctx: CallContext, method: str, name: str) -> Response:
        ref = ResourceGroups.ref(ctx.subscription.id, name)
        scope = f"/subscriptions/{ctx.subscription.id}/resourceGroups/{name}"
        await self._authorize(ctx.caller, self._groups.permission(method), scope)
        if method == "HEAD":
            exists = await self._store.resource_group(ctx.subscription.id, name)
            return Response(status_code=204 if exists else 404)
        return await self._invoke(request, ctx, method, self._groups, ref)

    async def _list_resources(self, ctx: CallContext, group: str | None) -> Response:
        sub = ctx.subscription.id
        if group is not None:
            existing = await self._store.resource_group(sub, group)
            if existing is None:
                raise rg_not_found(group)
            await self._authorize(
                ctx.caller,
                "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
                existing.id,
            )
        else:
            await self._authorize(
                ctx.caller, "Microsoft.Resources/subscriptions/resources/read", f"/subscriptions/{sub}"
            )
        flt = parse_resource_filter(ctx.query.get("$filter", ""))
        items = await self._store.list_resources(sub, resource_group=group, top_level_only=True)
        return json_response({"value": [render_generic(r) for r in filter_resources(items, flt)]})

    async def _providers(self, ctx: CallContext, method: str, rest: list[str]) -> Response:
        sub = ctx.subscription.id
        namespaces = sorted(self._registry.namespaces() | {"Microsoft.Resources"})

        def body(ns: str) -> dict[str, Any]:
            types = sorted(
                {
                    p.resource_type.split("/", 1)[1]
                    for p in self._registry.all()
                    if p.resource_type.lower().startswith(ns.lower() + "/")
                }
            )
            return {
                "id": f"/subscriptions/{sub}/providers/{ns}",
                "namespace": ns,
                "registrationState": "Registered",
                "registrationPolicy": "RegistrationRequired",
                "resourceTypes": [
                    {"resourceType": t, "locations": [d for _, d in LOCATIONS], "apiVersions": []}
                    for t in types
                ],
            }

        if len(rest) == 1:
            self._only(method, "GET")
            return json_response({"value": [body(ns) for ns in namespaces]})
        match = next((ns for ns in namespaces if ns.lower() == rest[1].lower()), None)
        if match is None:
            raise NotFound(f"The resource namespace '{rest[1]}' is invalid.", code="InvalidResourceNamespace")
        if len(rest) == 3:
            self._only(method, "POST")
        else:
            self._only(method, "GET")
        return json_response(body(match))

    # -- provider resources ---------------------------------------------------------------------

    def _resolve(self, ref: ResourceRef, method: str) -> tuple[ResourceProvider, ResourceRef, str | None]:
        """Find the provider and, for actions, the action name."""
        provider = self._registry.get(ref.resource_type)
        if provider is not None:
            return provider, ref, None
        if ref.is_collection and len(ref.types) >= 2:
            parent = ref.parent()
            owner = self._registry.get(parent.resource_type)
            action = ref.types[-1]
            if owner is not None:
                declared = {k.lower(): k for k in owner.actions}
                if action.lower() in declared and owner.actions[declared[action.lower()]] == method:
                    return owner, parent, declared[action.lower()]
        if ref.namespace.lower() not in {n.lower() for n in self._registry.namespaces()}:
            raise NotFound(
                f"The resource namespace '{ref.namespace}' is invalid.", code="InvalidResourceNamespace"
            )
        raise NotFound(
            f"The resource type '{'/'.join(ref.types)}' could not be found in the namespace "
            f"'{ref.namespace}' for api version '{{api}}'.",
            code="InvalidResourceType",
        )

    async def _provider_request(
        self, request: Request, ctx: CallContext, method: str, ref: ResourceRef
    ) -> Response:
        try:
            provider, target, action = self._resolve(ref, method)
        except NotFound as error:
            raise NotFound(error.message.replace("{api}", ctx.api_version), code=error.code) from None
        if target.resource_group is not None:
            group = await self._store.resource_group(ctx.subscription.id, target.resource_group)
            if group is None:
                raise rg_not_found(target.resource_group)
        if action is not None:
            await self._authorize(ctx.caller, provider.permission(method, action), target.id)
            payload = parse_json_body(await request.body(), lenient=provider.lenient_json)
            result = await provider.action(ctx, target, action, payload)
            headers = dict(result.headers)
            if result.operation is not None:
                headers.update(self._lro_headers(ctx, result.operation, location=True))
            if result.body is None:
                return Response(status_code=result.status, headers=headers)
            return json_response(result.body, result.status, headers)
        scope = (
            target.id if not target.is_collection else (target.parent().id if target.names else target.scope)
        )
        await self._authorize(ctx.caller, provider.permission(method), scope)
        return await self._invoke(request, ctx, method, provider, target)

    async def _invoke(
        self, request: Request, ctx: CallContext, method: str, provider: ResourceProvider, ref: ResourceRef
    ) -> Response:
        if ref.is_collection and method == "POST":
            # Collection-level actions such as checkNameAvailability.
            result = await provider.action(ctx, ref, ref.types[-1], parse_json_body(await request.body()))
            return json_response(result.body, result.status, result.headers or None)
        if ref.is_collection or (not ref.name and method == "GET"):
            self._only(method, "GET")
            return json_response({"value": await provider.list(ctx, ref)})
        if method in ("GET", "HEAD"):
            body = await provider.get(ctx, ref)
            return Response(status_code=204) if method == "HEAD" else json_response(body)
        if method == "PUT":
            payload = parse_json_body(await request.body(), lenient=provider.lenient_json)
            if not isinstance(payload, dict):
                raise InvalidArgument(
                    "The request content was invalid and could not be deserialized: 'The request "
                    "body must be a JSON object.'.",
                    code="InvalidRequestContent",
                )
            return self._put_response(ctx, await provider.put(ctx, ref, payload))
        if method == "PATCH":
            payload = parse_json_body(await request.body())
            if not isinstance(payload, dict):
                raise InvalidArgument(
                    "The request content was invalid and could not be deserialized: 'The request "
                    "body must be a JSON object.'.",
                    code="InvalidRequestContent",
                )
            return json_response(await provider.patch(ctx, ref, payload))
        if method == "DELETE":
            return self._delete_response(ctx, await provider.delete(ctx, ref))
        raise NotSupported(f"The requested method '{method}' is not allowed here.", code="MethodNotAllowed")

    # -- responses ------------------------------------------------------------------------------

    def _lro_headers(self, ctx: CallContext, op: Operation, *, location: bool) -> dict[str, str]:
        query = f"?api-version={ctx.api_version}"
        headers = {
            "Azure-AsyncOperation": ctx.base_url + op.status_path() + query,
            "Retry-After": "1",
        }
        if location:
            headers["Location"] = ctx.base_url + op.result_path() + query
        return headers

    def _put_response(self, ctx: CallContext, result: PutResult) -> Response:
        status = 201 if result.created else 200
        headers = self._lro_headers(ctx, result.operation, location=False) if result.operation else None
        return json_response(result.body, status, headers)

    def _delete_response(self, ctx: CallContext, result: DeleteResult) -> Response:
        if result.operation is not None:
            return Response(status_code=202, headers=self._lro_headers(ctx, result.operation, location=True))
        if not result.existed:
            return Response(status_code=204)
        if result.body is not None:
            return json_response(result.body, 200)
        return Response(status_code=200)

    def _operation_response(self, ctx: CallContext, op: Operation, *, result: bool) -> Response:
        if not result:
            # Retry-After on every in-progress poll: azure-core falls back to 30 s without it.
            headers = {"Retry-After": "1"} if op.status == IN_PROGRESS else None
            return json_response(op.status_body(), headers=headers)
        if op.status == IN_PROGRESS:
            return Response(status_code=202, headers=self._lro_headers(ctx, op, location=True))
        if op.status == SUCCEEDED:
            return Response(status_code=204)
        error = op.error or {"code": "OperationFailed", "message": "The operation failed."}
        status = 500 if error.get("code") == "InternalServerError" else 400
        return json_response({"error": error}, status)


def _deployment_operations_ref(subscription_id: str, rest: list[str], low: list[str]) -> ResourceRef | None:
    """``resourcegroups/{rg}/deployments/{name}/operations[/{id}]``: Azure serves a resource
    group's deployment operations without a ``providers`` segment."""
    if (
        len(low) not in (5, 6)
        or low[0] != "resourcegroups"
        or low[2] != "deployments"
        or low[4] != "operations"
    ):
        return None
    return ResourceRef(
        subscription_id,
        rest[1],
        f"/subscriptions/{subscription_id}/resourceGroups/{rest[1]}",
        "Microsoft.Resources",
        ("deployments", "operations"),
        (rest[3], *rest[5:]),
    )
