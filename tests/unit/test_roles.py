"""Data-driven RBAC evaluation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from moorage.identity import roles
from moorage.identity.records import RoleAssignment

SUB = "/subscriptions/11111111-1111-1111-1111-111111111111"
RG = f"{SUB}/resourceGroups/rg1"
REG = f"{RG}/providers/Microsoft.ContainerRegistry/registries/reg1"


def assignment(scope: str, role: str) -> RoleAssignment:
    now = datetime.now(UTC)
    return RoleAssignment("n", scope, role, "p", "ServicePrincipal", "t", now, now)


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("*", "Microsoft.Anything/x/write", True),
        ("*/read", "Microsoft.Resources/subscriptions/resourceGroups/read", True),
        ("*/read", "Microsoft.Resources/subscriptions/resourceGroups/write", False),
        ("Microsoft.Authorization/*/Write", "microsoft.authorization/roleAssignments/write", True),
        (
            "Microsoft.ContainerRegistry/registries/pull/read",
            "Microsoft.ContainerRegistry/registries/push/write",
            False,
        ),
    ],
)
def test_action_matching(pattern: str, action: str, expected: bool) -> None:
    assert roles.action_matches(pattern, action) is expected


def test_contributor_cannot_write_role_assignments() -> None:
    contributor = roles.role_by_id(roles.CONTRIBUTOR)
    assert contributor is not None
    assert roles.role_permits(contributor, "Microsoft.ManagedIdentity/userAssignedIdentities/write")
    assert not roles.role_permits(contributor, "Microsoft.Authorization/roleAssignments/write")


@pytest.mark.parametrize(
    ("scope", "target", "expected"),
    [
        (SUB, REG, True),
        (RG, RG, True),
        (RG.upper(), REG, True),
        (REG, RG, False),
        (f"{SUB}/resourceGroups/rg", RG, False),  # a prefix of the name is not a parent
        ("/", REG, True),
    ],
)
def test_scope_inheritance(scope: str, target: str, expected: bool) -> None:
    assert roles.scope_contains(scope, target) is expected


def test_acr_pull_at_resource_group_grants_pull_on_its_registries() -> None:
    granted = roles.granting_assignments(
        [assignment(RG, roles.ACR_PULL)], "Microsoft.ContainerRegistry/registries/pull/read", REG
    )
    assert len(granted) == 1
    assert not roles.granting_assignments(
        [assignment(RG, roles.ACR_PULL)], "Microsoft.ContainerRegistry/registries/push/write", REG
    )


def test_role_lookup_accepts_full_ids_and_names() -> None:
    full = f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{roles.ACR_PULL}"
    assert roles.role_by_id(full) == roles.role_by_name("acrpull")
