"""Role definitions, role assignments and RBAC enforcement through azure-mgmt-authorization."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.api.conftest import RawArm, credential_for, fetch_token, trust
from tests.conftest import sdk_kwargs
from tests.server import RunningServer

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"

BUILTINS = {
    "Owner": OWNER,
    "Contributor": CONTRIBUTOR,
    "Reader": READER,
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c2a72d9f",
    "AcrPull": ACR_PULL,
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "AcrDelete": "c2f4ef07-c644-48eb-af81-4b1b4947fb11",
}


def role_id(server: RunningServer, guid: str) -> str:
    return f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def assign(
    client: AuthorizationManagementClient, server: RunningServer, scope: str, role: str, principal: str
) -> Any:
    return client.role_assignments.create(
        scope,
        str(uuid.uuid4()),
        RoleAssignmentCreateParameters(
            role_definition_id=role_id(server, role),
            principal_id=principal,
            principal_type="ServicePrincipal",
        ),
    )


@pytest.fixture
def identity(msi: ManagedServiceIdentityClient, group: Any, rg_name: str) -> Any:
    return msi.user_assigned_identities.create_or_update(rg_name, "assignee", {"location": "westus"})


@pytest.mark.parametrize(("name", "guid"), sorted(BUILTINS.items()))
def test_builtin_role_definitions_have_azure_guids(
    authorization: AuthorizationManagementClient, server: RunningServer, name: str, guid: str
) -> None:
    scope = f"/subscriptions/{server.subscription_id}"
    found = list(authorization.role_definitions.list(scope, filter=f"roleName eq '{name}'"))
    assert [d.name for d in found] == [guid]
    assert found[0].role_type == "BuiltInRole"
    assert authorization.role_definitions.get(scope, guid).role_name == name


def test_acr_pull_grants_pull(authorization: AuthorizationManagementClient, server: RunningServer) -> None:
    role = authorization.role_definitions.get(f"/subscriptions/{server.subscription_id}", ACR_PULL)
    assert role.permissions[0].actions == ["Microsoft.ContainerRegistry/registries/pull/read"]


def test_create_get_list_delete_at_resource_scope(
    authorization: AuthorizationManagementClient, server: RunningServer, identity: Any
) -> None:
    created = assign(authorization, server, identity.id, ACR_PULL, identity.principal_id)
    assert created.id == f"{identity.id}/providers/Microsoft.Authorization/roleAssignments/{created.name}"
    assert created.scope == identity.id
    assert created.principal_type == "ServicePrincipal"
    assert created.role_definition_id == role_id(server, ACR_PULL)
    assert authorization.role_assignments.get(identity.id, created.name).principal_id == identity.principal_id
    listed = list(authorization.role_assignments.list_for_scope(identity.id, filter="atScope()"))
    assert created.id in [a.id for a in listed]
    by_principal = list(
        authorization.role_assignments.list_for_subscription(
            filter=f"principalId eq '{identity.principal_id}'"
        )
    )
    assert [a.id for a in by_principal] == [created.id]
    deleted = authorization.role_assignments.delete(identity.id, created.name)
    assert deleted is not None
    assert deleted.id == created.id
    with pytest.raises(ResourceNotFoundError):
        authorization.role_assignments.get(identity.id, created.name)


def test_listing_includes_inherited_assignments(
    authorization: AuthorizationManagementClient, server: RunningServer, identity: Any, group: Any
) -> None:
    on_group = assign(authorization, server, group.id, READER, identity.principal_id)
    listed = list(authorization.role_assignments.list_for_resource_group(group.name))
    assert on_group.id in [a.id for a in listed]
    # The bootstrap principal's Owner at subscription scope is inherited by the group.
    inherited = [a for a in listed if a.scope == f"/subscriptions/{server.subscription_id}"]
    assert role_id(server, OWNER) in [a.role_definition_id for a in inherited]


def test_duplicate_assignment_is_409(
    authorization: AuthorizationManagementClient, server: RunningServer, identity: Any
) -> None:
    assign(authorization, server, identity.id, READER, identity.principal_id)
    with pytest.raises(ResourceExistsError) as info:
        assign(authorization, server, identity.id, READER, identity.principal_id)
    assert info.value.status_code == 409
    assert info.value.error is not None
    assert info.value.error.code == "RoleAssignmentExists"


def test_same_name_same_body_is_idempotent(raw: RawArm, server: RunningServer, identity: Any) -> None:
    path = f"{identity.id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    body = {"properties": {"roleDefinitionId": role_id(server, READER), "principalId": identity.principal_id}}
    first = raw.request("PUT", path, api_version="2022-04-01", json=body)
    second = raw.request("PUT", path, api_version="2022-04-01", json=body)
    assert (first.status_code, second.status_code) == (201, 200)


def test_unknown_role_definition(
    authorization: AuthorizationManagementClient, server: RunningServer, identity: Any
) -> None:
    with pytest.raises(HttpResponseError) as info:
        assign(authorization, server, identity.id, str(uuid.uuid4()), identity.principal_id)
    assert info.value.status_code == 400
    assert info.value.error is not None
    assert info.value.error.code == "RoleDefinitionDoesNotExist"


def test_unknown_principal(
    authorization: AuthorizationManagementClient, server: RunningServer, group: Any
) -> None:
    with pytest.raises(HttpResponseError) as info:
        assign(authorization, server, group.id, READER, str(uuid.uuid4()))
    assert info.value.status_code == 400
    assert info.value.error is not None
    assert info.value.error.code == "PrincipalNotFound"


def test_name_must_be_a_guid(raw: RawArm, server: RunningServer, identity: Any, group: Any) -> None:
    response = raw.request(
        "PUT",
        f"{group.id}/providers/Microsoft.Authorization/roleAssignments/not-a-guid",
        api_version="2022-04-01",
        json={
            "properties": {"roleDefinitionId": role_id(server, READER), "principalId": identity.principal_id}
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRoleAssignmentId"


def test_delete_missing_assignment_is_204(raw: RawArm, group: Any) -> None:
    path = f"{group.id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    assert raw.request("DELETE", path, api_version="2022-04-01").status_code == 204


def test_deleting_the_group_removes_assignments_scoped_inside_it(
    authorization: AuthorizationManagementClient,
    resources: ResourceManagementClient,
    msi: ManagedServiceIdentityClient,
    server: RunningServer,
    rg_name: str,
) -> None:
    resources.resource_groups.create_or_update(rg_name, {"location": "westus"})
    member = msi.user_assigned_identities.create_or_update(rg_name, "member", {"location": "westus"})
    created = assign(authorization, server, member.id, READER, member.principal_id)
    resources.resource_groups.begin_delete(rg_name).result()
    remaining = list(authorization.role_assignments.list_for_subscription())
    assert created.id not in [a.id for a in remaining]


# -- RBAC enforcement with a second, less privileged service principal --------------------------


class Principal:
    def __init__(self, server: RunningServer, app_id: str, object_id: str, secret: str) -> None:
        self.app_id, self.object_id, self.secret = app_id, object_id, secret
        self.credential = credential_for(server, app_id, secret)


@pytest.fixture
def limited(server: RunningServer) -> Iterator[Principal]:
    """A new service principal with no role at all (created through the directory API)."""
    token = fetch_token(server, server.client_id, server.client_secret)
    with httpx.Client(base_url=server.endpoint, verify=trust(server)) as http:
        response = http.post(
            f"/moorage/directory/{server.tenant_id}/servicePrincipals",
            json={"displayName": "limited"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        principal = Principal(server, body["appId"], body["id"], body["password"])
        with principal.credential:
            yield principal
        http.delete(
            f"/moorage/directory/{server.tenant_id}/servicePrincipals/{body['appId']}",
            headers={"Authorization": f"Bearer {token}"},
        )


def test_no_role_means_authorization_failed(server: RunningServer, limited: Principal, group: Any) -> None:
    with (
        ResourceManagementClient(limited.credential, server.subscription_id, **sdk_kwargs(server)) as client,
        pytest.raises(HttpResponseError) as info,
    ):
        client.resource_groups.get(group.name)
    assert info.value.status_code == 403
    assert info.value.error is not None
    assert info.value.error.code == "AuthorizationFailed"
    action = "Microsoft.Resources/subscriptions/resourceGroups/read"
    oid = limited.object_id
    assert info.value.error.message == (
        f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
        f"'{action}' over scope '{group.id}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials."
    )


def test_reader_reads_but_cannot_write(
    server: RunningServer, authorization: AuthorizationManagementClient, limited: Principal, group: Any
) -> None:
    assign(authorization, server, group.id, READER, limited.object_id)
    kwargs = sdk_kwargs(server)
    with (
        ResourceManagementClient(limited.credential, server.subscription_id, **kwargs) as client,
        ManagedServiceIdentityClient(limited.credential, server.subscription_id, **kwargs) as msi_client,
    ):
        assert client.resource_groups.get(group.name).id == group.id
        with pytest.raises(HttpResponseError) as info:
            msi_client.user_assigned_identities.create_or_update(group.name, "nope", {"location": "westus"})
    assert info.value.status_code == 403
    assert info.value.error is not None
    assert "Microsoft.ManagedIdentity/userAssignedIdentities/write" in info.value.error.message


def test_contributor_on_group_cannot_assign_roles(
    server: RunningServer, authorization: AuthorizationManagementClient, limited: Principal, group: Any
) -> None:
    assign(authorization, server, group.id, CONTRIBUTOR, limited.object_id)
    with (
        ManagedServiceIdentityClient(
            limited.credential, server.subscription_id, **sdk_kwargs(server)
        ) as msi_client,
        AuthorizationManagementClient(
            limited.credential, server.subscription_id, **sdk_kwargs(server)
        ) as auth,
    ):
        made = msi_client.user_assigned_identities.create_or_update(
            group.name, "mine", {"location": "westus"}
        )
        with pytest.raises(HttpResponseError) as info:
            assign(auth, server, made.id, READER, made.principal_id)
    assert info.value.status_code == 403
    assert "Microsoft.Authorization/roleAssignments/write" in str(
        info.value.error.message if info.value.error else ""
    )


def test_scope_outside_the_grant_is_denied(
    server: RunningServer,
    authorization: AuthorizationManagementClient,
    resources: ResourceManagementClient,
    limited: Principal,
    group: Any,
) -> None:
    assign(authorization, server, group.id, OWNER, limited.object_id)
    other = f"rg-{uuid.uuid4().hex[:8]}"
    resources.resource_groups.create_or_update(other, {"location": "westus"})
    try:
        with ResourceManagementClient(
            limited.credential, server.subscription_id, **sdk_kwargs(server)
        ) as client:
            assert client.resource_groups.get(group.name).name == group.name
            with pytest.raises(HttpResponseError) as info:
                client.resource_groups.get(other)
            visible = [g.name for g in client.resource_groups.list()]
        assert info.value.status_code == 403
        assert visible == [group.name]
    finally:
        resources.resource_groups.begin_delete(other).result()
