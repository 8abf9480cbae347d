"""``Microsoft.ManagedIdentity/userAssignedIdentities`` through azure-mgmt-msi."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient

from tests.api.conftest import RawArm


def _is_guid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


def test_create_fills_principal_client_and_tenant(
    msi: ManagedServiceIdentityClient, group: Any, rg_name: str, raw: RawArm
) -> None:
    identity = msi.user_assigned_identities.create_or_update(rg_name, "app-id", {"location": "westus"})
    assert identity.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert identity.id == f"{group.id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-id"
    assert _is_guid(identity.principal_id)
    assert _is_guid(identity.client_id)
    assert identity.tenant_id == raw.server.tenant_id


def test_put_again_keeps_the_principal(msi: ManagedServiceIdentityClient, group: Any, rg_name: str) -> None:
    first = msi.user_assigned_identities.create_or_update(rg_name, "stable", {"location": "westus"})
    second = msi.user_assigned_identities.create_or_update(
        rg_name, "stable", {"location": "westus", "tags": {"a": "1"}}
    )
    assert (second.principal_id, second.client_id) == (first.principal_id, first.client_id)
    assert second.tags == {"a": "1"}


def test_get_update_list_delete(msi: ManagedServiceIdentityClient, group: Any, rg_name: str) -> None:
    created = msi.user_assigned_identities.create_or_update(rg_name, "cycle", {"location": "westus"})
    assert msi.user_assigned_identities.get(rg_name, "cycle").principal_id == created.principal_id
    patched = msi.user_assigned_identities.update(rg_name, "cycle", {"tags": {"team": "x"}})
    assert patched.tags == {"team": "x"}
    assert patched.principal_id == created.principal_id
    assert "cycle" in [i.name for i in msi.user_assigned_identities.list_by_resource_group(rg_name)]
    assert created.id in [i.id for i in msi.user_assigned_identities.list_by_subscription()]
    msi.user_assigned_identities.delete(rg_name, "cycle")
    with pytest.raises(ResourceNotFoundError) as info:
        msi.user_assigned_identities.get(rg_name, "cycle")
    assert info.value.error is not None
    assert info.value.error.code == "ResourceNotFound"


def test_delete_of_missing_identity_is_204(raw: RawArm, group: Any) -> None:
    path = f"{group.id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost"
    assert raw.request("DELETE", path, api_version="2024-11-30").status_code == 204


def test_identity_in_missing_group(msi: ManagedServiceIdentityClient) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        msi.user_assigned_identities.create_or_update("no-such-rg", "x1x", {"location": "westus"})
    assert info.value.error is not None
    assert info.value.error.code == "ResourceGroupNotFound"


@pytest.mark.parametrize("name", ["ab", "-leading", "has space", "x" * 129])
def test_invalid_names(msi: ManagedServiceIdentityClient, group: Any, rg_name: str, name: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        msi.user_assigned_identities.create_or_update(rg_name, name, {"location": "westus"})
    assert info.value.status_code == 400
    assert info.value.error is not None
    assert info.value.error.code == "InvalidResourceName"


def test_location_required(raw: RawArm, group: Any) -> None:
    path = f"{group.id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/noloc"
    response = raw.request("PUT", path, api_version="2024-11-30", json={"tags": {}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "LocationRequired"
    assert raw.request("GET", path, api_version="2024-11-30").status_code == 404
