"""``Microsoft.Authorization/roleAssignments`` (extension resource at any scope) and
``Microsoft.Authorization/roleDefinitions`` (the built-in roles, read-only)."""

from __future__ import annotations

import re
from typing import Any

from moorage.arm.ids import ResourceRef
from moorage.arm.resources.base import (
    CallContext,
    DeleteResult,
    PutResult,
    ResourceProvider,
    require_object,
)
from moorage.arm.store import ArmStore
from moorage.core.clock import isoformat
from moorage.core.errors import InvalidArgument, NotFound
from moorage.identity import roles
from moorage.identity.records import RoleAssignment, RoleDefinition
from moorage.identity.service import IdentityService

_PRINCIPAL_EQ = re.compile(r"principalId\s+eq\s+'([^']+)'", re.IGNORECASE)
_ASSIGNED_TO = re.compile(r"assignedTo\('([^']+)'\)", re.IGNORECASE)
_ROLE_NAME_EQ = re.compile(r"roleName\s+eq\s+'([^']+)'", re.IGNORECASE)
_TYPE_EQ = re.compile(r"type\s+eq\s+'([^']+)'", re.IGNORECASE)


def role_definition_id(subscription_id: str, guid: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def render_assignment(a: RoleAssignment, subscription_id: str) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": role_definition_id(subscription_id, a.role_definition_id),
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "scope": a.scope,
            "condition": a.condition,
            "conditionVersion": a.condition_version,
            "description": a.description,
            "createdOn": isoformat(a.created_on),
            "updatedOn": isoformat(a.updated_on),
            "createdBy": a.created_by,
            "updatedBy": a.created_by,
            "delegatedManagedIdentityResourceId": None,
        },
    }


def render_role(role: RoleDefinition, subscription_id: str) -> dict[str, Any]:
    return {
        "id": role_definition_id(subscription_id, role.id),
        "name": role.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.role_name,
            "type": role.role_type,
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(role.actions),
                    "notActions": list(role.not_actions),
                    "dataActions": list(role.data_actions),
                    "notDataActions": list(role.not_data_actions),
                }
            ],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-01-01T00:00:00.0000000Z",
            "createdBy": None,
            "updatedBy": None,
        },
    }


class RoleAssignments(ResourceProvider):
    resource_type = "Microsoft.Authorization/roleAssignments"
    scope = "extension"

    def __init__(self, store: ArmStore, identity: IdentityService) -> None:
        self._store = store
        self._identity = identity

    async def _require_scope(self, scope: str) -> None:
        if not await self._store.scope_exists(scope):
            raise NotFound(f"The scope '{scope}' is not valid or does not exist.", code="InvalidScope")

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        await self._require_scope(ref.scope)
        props = require_object(body.get("properties"), "properties")
        role_id = props.get("roleDefinitionId")
        principal_id = props.get("principalId")
        if not isinstance(role_id, str) or not role_id:
            raise InvalidArgument(
                "The request content was invalid and could not be deserialized: 'Required property "
                "'roleDefinitionId' not found in JSON. Path 'properties'.'.",
                target="properties.roleDefinitionId",
            )
        if not isinstance(principal_id, str) or not principal_id:
            raise InvalidArgument(
                "The request content was invalid and could not be deserialized: 'Required property "
                "'principalId' not found in JSON. Path 'properties'.'.",
                target="properties.principalId",
            )
        principal_type = props.get("principalType")
        if principal_type is not None and not isinstance(principal_type, str):
            raise InvalidArgument("principalType must be a string.", target="properties.principalType")
        try:
            assignment, created = await self._identity.create_role_assignment(
                tenant_id=ctx.subscription.tenant_id,
                scope=ref.scope,
                name=ref.name,
                role_definition_id=role_id,
                principal_id=principal_id,
                principal_type=principal_type,
                created_by=ctx.caller.object_id,
                description=_opt_str(props, "description"),
                condition=_opt_str(props, "condition"),
                condition_version=_opt_str(props, "conditionVersion"),
            )
        except InvalidArgument as error:
            if "role assignment ID" in error.message:
                raise InvalidArgument(
                    f"The role assignment ID '{ref.name}' is not valid. The role assignment ID must "
                    "be a GUID.",
                    code="InvalidRoleAssignmentId",
                ) from error
            raise
        return PutResult(render_assignment(assignment, ctx.subscription.id), created)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        assignment = await self._identity.get_role_assignment(ref.scope, ref.name)
        return render_assignment(assignment, ctx.subscription.id)

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        assignment = await self._identity.delete_role_assignment(ref.scope, ref.name)
        if assignment is None:
            return DeleteResult(existed=False)
        return DeleteResult(existed=True, body=render_assignment(assignment, ctx.subscription.id))

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        await self._require_scope(ref.scope)
        flt = ctx.query.get("$filter", "")
        principal = _PRINCIPAL_EQ.search(flt) or _ASSIGNED_TO.search(flt)
        assignments = await self._identity.list_role_assignments(
            ctx.subscription.tenant_id,
            ref.scope,
            at_scope="atscope()" in flt.replace(" ", "").lower(),
            principal_id=principal.group(1) if principal else None,
        )
        return [render_assignment(a, ctx.subscription.id) for a in assignments]

    async def on_scope_deleted(self, ctx: CallContext, scope: str) -> None:
        await self._identity.delete_role_assignments_within(scope)


def _opt_str(props: dict[str, Any], key: str) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string.", target=f"properties.{key}")
    return value


class RoleDefinitions(ResourceProvider):
    resource_type = "Microsoft.Authorization/roleDefinitions"
    scope = "extension"

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        role = roles.role_by_id(ref.name)
        if role is None:
            raise NotFound(
                f"The role definition '{ref.name}' could not be found.", code="RoleDefinitionDoesNotExist"
            )
        return render_role(role, ctx.subscription.id)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        flt = ctx.query.get("$filter", "")
        found = list(roles.BUILTIN_ROLES)
        by_name = _ROLE_NAME_EQ.search(flt)
        if by_name:
            found = [r for r in found if r.role_name.lower() == by_name.group(1).lower()]
        by_type = _TYPE_EQ.search(flt)
        if by_type:
            found = [r for r in found if r.role_type.lower() == by_type.group(1).lower()]
        return [render_role(r, ctx.subscription.id) for r in found]
