"""Built-in role definitions (Azure's real GUIDs and actions) and the permission evaluator.

Evaluation is data-driven, as in Azure RBAC: a principal may perform an action at a scope when
some role assignment at that scope or an ancestor scope references a role definition whose
``actions`` match the action and whose ``notActions`` do not. Matching is case-insensitive and
``*`` matches any run of characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from moorage.identity.records import RoleAssignment, RoleDefinition

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c2a72d9f"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"
ACR_DELETE = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
ACR_IMAGE_SIGNER = "6cef56e8-d556-48e5-a04f-b8e64114680f"
ACR_QUARANTINE_READER = "cdda3590-29a3-44f6-95f2-9f980659eb04"
ACR_QUARANTINE_WRITER = "c8d4ff99-41c3-41a8-9f60-21dfdad59608"
MANAGED_IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
MANAGED_IDENTITY_CONTRIBUTOR = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"

_BUILTIN = "BuiltInRole"

BUILTIN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        OWNER,
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        _BUILTIN,
        actions=("*",),
    ),
    RoleDefinition(
        CONTRIBUTOR,
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in "
        "Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        _BUILTIN,
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ),
    ),
    RoleDefinition(
        READER,
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        _BUILTIN,
        actions=("*/read",),
    ),
    RoleDefinition(
        USER_ACCESS_ADMINISTRATOR,
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        _BUILTIN,
        actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
    ),
    RoleDefinition(
        RBAC_ADMINISTRATOR,
        "Role Based Access Control Administrator",
        "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not "
        "allow you to manage access using other ways, such as Azure Policy.",
        _BUILTIN,
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
    ),
    RoleDefinition(
        ACR_PULL,
        "AcrPull",
        "acr pull",
        _BUILTIN,
        actions=("Microsoft.ContainerRegistry/registries/pull/read",),
    ),
    RoleDefinition(
        ACR_PUSH,
        "AcrPush",
        "acr push",
        _BUILTIN,
        actions=(
            "Microsoft.ContainerRegistry/registries/pull/read",
            "Microsoft.ContainerRegistry/registries/push/write",
        ),
    ),
    RoleDefinition(
        ACR_DELETE,
        "AcrDelete",
        "acr delete",
        _BUILTIN,
        actions=("Microsoft.ContainerRegistry/registries/artifacts/delete",),
    ),
    RoleDefinition(
        ACR_IMAGE_SIGNER,
        "AcrImageSigner",
        "acr image signer",
        _BUILTIN,
        actions=("Microsoft.ContainerRegistry/registries/sign/write",),
    ),
    RoleDefinition(
        ACR_QUARANTINE_READER,
        "AcrQuarantineReader",
        "acr quarantine data reader",
        _BUILTIN,
        actions=("Microsoft.ContainerRegistry/registries/quarantine/read",),
    ),
    RoleDefinition(
        ACR_QUARANTINE_WRITER,
        "AcrQuarantineWriter",
        "acr quarantine data writer",
        _BUILTIN,
        actions=(
            "Microsoft.ContainerRegistry/registries/quarantine/read",
            "Microsoft.ContainerRegistry/registries/quarantine/write",
        ),
    ),
    RoleDefinition(
        MANAGED_IDENTITY_OPERATOR,
        "Managed Identity Operator",
        "Read and Assign User Assigned Identity",
        _BUILTIN,
        actions=(
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ),
    ),
    RoleDefinition(
        MANAGED_IDENTITY_CONTRIBUTOR,
        "Managed Identity Contributor",
        "Create, Read, Update, and Delete User Assigned Identity",
        _BUILTIN,
        actions=(
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ),
    ),
)

_BY_ID = {role.id: role for role in BUILTIN_ROLES}
_BY_NAME = {role.role_name.lower(): role for role in BUILTIN_ROLES}


def role_by_id(role_id: str) -> RoleDefinition | None:
    """The built-in role with this GUID (or full ``.../roleDefinitions/<guid>`` id)."""
    return _BY_ID.get(role_id.rstrip("/").rsplit("/", 1)[-1].lower())


def role_by_name(name: str) -> RoleDefinition | None:
    """The built-in role with this display name (``AcrPull``, ``Owner``), case-insensitive."""
    return _BY_NAME.get(name.lower())


@lru_cache(maxsize=512)
def _pattern(expr: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in expr.split("*")) + "$", re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """Does an ``actions``/``notActions`` entry match a concrete operation name?"""
    return _pattern(pattern).match(action) is not None


def role_permits(role: RoleDefinition, action: str, *, data: bool = False) -> bool:
    """Whether ``role`` grants ``action`` (a data action when ``data``)."""
    allow, deny = (role.data_actions, role.not_data_actions) if data else (role.actions, role.not_actions)
    return any(action_matches(p, action) for p in allow) and not any(action_matches(p, action) for p in deny)


def scope_contains(scope: str, target: str) -> bool:
    """Is ``target`` at or below ``scope``? (Case-insensitive, ``/`` is the root.)"""
    s = scope.rstrip("/").lower()
    t = target.rstrip("/").lower()
    return s in ("", t) or t.startswith(s + "/")


def granting_assignments(
    assignments: Iterable[RoleAssignment], action: str, scope: str, *, data: bool = False
) -> list[RoleAssignment]:
    """The assignments (of any principal given) that grant ``action`` at ``scope``."""
    found = []
    for assignment in assignments:
        role = role_by_id(assignment.role_definition_id)
        if role and scope_contains(assignment.scope, scope) and role_permits(role, action, data=data):
            found.append(assignment)
    return found
