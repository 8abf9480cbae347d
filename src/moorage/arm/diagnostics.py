"""``Moorage.Diagnostics``: ``moorage diagnose`` and the server facts a support bundle carries,
served by the ARM edge (same authentication, tenant check, ``api-version`` and error envelope).

``POST /subscriptions/{sub}/providers/Moorage.Diagnostics/diagnose?api-version=…`` with one of::

    {"target": "<container group resource id>"}     the caller needs …/containerGroups/read on it
    {"target": "<deployment resource id>"}          …/deployments/read on it
    {"image": "<reference>", "as": "<identity>", "password": "<secret>"}

answers ``200`` with the report (:class:`moorage.diagnose.report.Report`). For an image, ``as``
is a user-assigned identity's resource id (the caller needs
``…/userAssignedIdentities/assign/action`` on it, as to attach it), a service principal's appId
or a registry user name (admin user, repository token) — both with ``password``, since a
service principal's secret is not stored in plain text — or absent (anonymous). The caller
needs ``Microsoft.ContainerRegistry/registries/read`` on a moorage registry the image names, and
``Microsoft.ContainerInstance/containerGroups/read`` on the subscription for any other registry
(a check that makes the platform connect out is what creating a group would do).

``GET /subscriptions/{sub}/providers/Moorage.Diagnostics/serverInfo?api-version=…`` answers the
server's version and settings (nothing secret), to any caller with a role in the subscription.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from moorage.arm.app import Extension
from moorage.arm.dispatch import authorize
from moorage.arm.ids import ResourceRef, parse_resource_id
from moorage.arm.resources.base import CallContext, not_found, parse_json_body
from moorage.arm.resources.deployments import DeploymentsProvider
from moorage.arm.store import ArmStore
from moorage.core.errors import InvalidArgument, MoorageError, NotSupported, PermissionDenied
from moorage.core.reference import parse_reference
from moorage.deployments.service import Deployments
from moorage.diagnose.service import CONTAINER_GROUP_TYPE, Diagnostician, FailedGroup
from moorage.edge import json_response
from moorage.identity import roles
from moorage.identity.service import IdentityService
from moorage.instances.access import RegistryCredential
from moorage.instances.service import ContainerGroups

NAMESPACE = "Moorage.Diagnostics"
DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
ASSIGN_IDENTITY = f"{IDENTITY_TYPE}/assign/action"


def _bad(message: str, target: str | None = None) -> InvalidArgument:
    return InvalidArgument(message, code="InvalidRequestContent", target=target)


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _bad(f"The property '{key}' must be a non-empty string.", key)
    return value


class DiagnosticsEdge:
    """The ``Moorage.Diagnostics`` endpoints (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ArmStore,
        identity: IdentityService,
        diagnostician: Diagnostician,
        groups: ContainerGroups,
        deployments: Deployments,
        deployments_provider: DeploymentsProvider,
        server_info: Callable[[], dict[str, Any]],
    ) -> None:
        self._store = store
        self._identity = identity
        self._diagnostician = diagnostician
        self._groups = groups
        self._deployments = deployments
        self._deployments_provider = deployments_provider
        self._server_info = server_info

    def extensions(self) -> dict[str, Extension]:
        """The endpoints by lower-cased ``namespace/name`` (for :class:`~moorage.arm.app.ArmEdge`)."""
        return {
            f"{NAMESPACE.lower()}/diagnose": self.diagnose,
            f"{NAMESPACE.lower()}/serverinfo": self.server_info,
        }

    # -- diagnose --------------------------------------------------------------------------------

    async def diagnose(self, request: Request, ctx: CallContext) -> Response:
        _only(request, "POST")
        body = parse_json_body(await request.body())
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object with 'target', or 'image' (and 'as').")
        target = _optional_text(body, "target")
        image = _optional_text(body, "image")
        if (target is None) == (image is None):
            raise _bad("Give exactly one of 'target' (a container group or deployment id) and 'image'.")
        if target is not None:
            report = await self._diagnose_target(ctx, target)
        else:
            assert image is not None  # noqa: S101 - exactly one of the two is set
            report = await self._diagnose_image(ctx, image, _optional_text(body, "as"), body.get("password"))
        return json_response(report)

    async def _diagnose_target(self, ctx: CallContext, target: str) -> dict[str, Any]:
        ref = parse_resource_id(target)
        if (ref.subscription_id or "").lower() != ctx.subscription.id.lower():
            raise _bad(f"The target '{target}' is not in subscription '{ctx.subscription.id}'.", "target")
        kind = ref.resource_type.lower()
        if kind == CONTAINER_GROUP_TYPE.lower():
            await authorize(self._identity, ctx.caller, f"{CONTAINER_GROUP_TYPE}/read", ref.id)
            group = await self._groups.get(ref.id)
            if group is None:
                raise not_found(ref)
            report = await self._diagnostician.for_group(
                group.id, group.definition, tenant_id=ctx.subscription.tenant_id
            )
            return report.as_json()
        if kind == DEPLOYMENT_TYPE.lower():
            await authorize(self._identity, ctx.caller, f"{DEPLOYMENT_TYPE}/read", ref.id)
            return await self._diagnose_deployment(ctx, ref)
        raise NotSupported(
            f"Diagnosis covers container groups and deployments, not '{ref.resource_type}'.",
            code="InvalidDiagnosticsTarget",
            target="target",
        )

    async def _diagnose_deployment(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        deployment = await self._deployments.get(ref.id)
        failed: list[FailedGroup] = []
        others: list[dict[str, Any]] = []
        for op in await self._deployments.operations(deployment.id):
            props = op.get("properties") or {}
            if props.get("provisioningState") != "Failed":
                continue
            resource = props.get("targetResource") or {}
            error = (props.get("statusMessage") or {}).get("error")
            if str(resource.get("resourceType", "")).lower() != CONTAINER_GROUP_TYPE.lower():
                code = error.get("code") if isinstance(error, dict) else None
                others.append({**resource, "code": code})
                continue
            failed.append(await self._failed_group(ctx, ref, op, resource, error))
        report = await self._diagnostician.for_deployment(
            deployment.id,
            deployment.provisioning_state,
            failed,
            others,
            tenant_id=ctx.subscription.tenant_id,
        )
        return report.as_json()

    async def _failed_group(
        self,
        ctx: CallContext,
        deployment: ResourceRef,
        op: dict[str, Any],
        resource: dict[str, Any],
        error: Any,
    ) -> FailedGroup:
        resource_id = str(resource.get("id") or "")
        try:
            rendered = await self._deployments_provider.rendered_resource(ctx, deployment, resource_id)
        except MoorageError:
            rendered = None  # the template no longer renders: reported as such
        location = None
        group_ref = parse_resource_id(resource_id)
        if group_ref.resource_group is not None:
            found = await self._store.resource_group(ctx.subscription.id, group_ref.resource_group)
            location = found.location if found is not None else None
        return FailedGroup(
            id=resource_id,
            name=str(resource.get("resourceName") or group_ref.name),
            operation_id=op.get("operationId"),
            error=error if isinstance(error, dict) else None,
            api_version=rendered[0] if rendered else None,
            body=rendered[1] if rendered else None,
            location=location,
        )

    async def _diagnose_image(
        self, ctx: CallContext, image: str, identity: str | None, password: Any
    ) -> dict[str, Any]:
        if password is not None and not isinstance(password, str):
            raise _bad("The property 'password' must be a string.", "password")
        try:
            registry_host: str | None = parse_reference(image).registry
        except MoorageError:
            registry_host = None  # reported as InvalidImageReference
        facts = await self._diagnostician.registry(registry_host) if registry_host else None
        if facts is not None:
            await authorize(
                self._identity, ctx.caller, "Microsoft.ContainerRegistry/registries/read", facts.resource_id
            )
        else:
            await authorize(
                self._identity,
                ctx.caller,
                f"{CONTAINER_GROUP_TYPE}/read",
                f"/subscriptions/{ctx.subscription.id}",
            )
        credentials: list[RegistryCredential] = []
        server = registry_host or ""
        if identity is not None and identity.startswith("/"):
            ref = parse_resource_id(identity)
            if ref.resource_type.lower() != IDENTITY_TYPE.lower():
                raise _bad(f"'as' must be a user-assigned identity id, not a '{ref.resource_type}'.", "as")
            await authorize(self._identity, ctx.caller, ASSIGN_IDENTITY, ref.id)
            credentials.append(RegistryCredential(server, identity=identity))
        elif identity is not None:
            if not password:
                raise _bad(
                    f"'{identity}' needs its password: a service principal's secret (or a registry user's "
                    "password) is not stored in plain text. Pass 'password', or use a managed identity.",
                    "password",
                )
            credentials.append(RegistryCredential(server, username=identity, password=password))
        report = await self._diagnostician.for_image(
            image, credentials, identity=identity, tenant_id=ctx.subscription.tenant_id
        )
        return report.as_json()

    # -- server facts ------------------------------------------------------------------------

    async def server_info(self, request: Request, ctx: CallContext) -> Response:
        _only(request, "GET")
        scope = f"/subscriptions/{ctx.subscription.id}"
        assignments = await self._identity.assignments_of(ctx.caller.object_id)
        if not any(
            roles.scope_contains(a.scope, scope) or roles.scope_contains(scope, a.scope) for a in assignments
        ):
            raise PermissionDenied(
                f"The client '{ctx.caller.object_id}' has no role assignment in subscription "
                f"'{ctx.subscription.id}'.",
                code="AuthorizationFailed",
            )
        return json_response(self._server_info())


def _only(request: Request, method: str) -> None:
    if request.method != method:
        raise NotSupported(
            f"The requested method '{request.method}' is not allowed here.", code="MethodNotAllowed"
        )
