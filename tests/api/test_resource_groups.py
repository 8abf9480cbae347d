"""Resource groups and generic listings through azure-mgmt-resource, against a real server."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.api.conftest import RawArm


def test_create_returns_the_group(resources: ResourceManagementClient, group: Any, rg_name: str) -> None:
    assert group.name == rg_name
    assert group.location == "westus"
    assert group.properties.provisioning_state == "Succeeded"
    assert group.id.endswith(f"/resourceGroups/{rg_name}")


def test_create_answers_201_then_200(raw: RawArm, rg_name: str) -> None:
    path = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{rg_name}"
    first = raw.request("PUT", path, json={"location": "West US"})
    again = raw.request("PUT", path, json={"location": "westus", "tags": {"k": "v"}})
    raw.request("DELETE", path)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["location"] == "westus"
    assert again.json()["tags"] == {"k": "v"}


def test_get_list_and_head(resources: ResourceManagementClient, group: Any, rg_name: str) -> None:
    assert resources.resource_groups.get(rg_name).id == group.id
    assert rg_name in [g.name for g in resources.resource_groups.list()]
    assert resources.resource_groups.check_existence(rg_name) is True
    assert resources.resource_groups.check_existence(rg_name + "-missing") is False


def test_segments_match_case_insensitively(raw: RawArm, group: Any, rg_name: str) -> None:
    for path in (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{rg_name}",
        f"/subscriptions/{raw.server.subscription_id}/RESOURCEGROUPS/{rg_name.upper()}",
    ):
        response = raw.request("GET", path)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == rg_name


def test_patch_updates_tags(resources: ResourceManagementClient, group: Any, rg_name: str) -> None:
    updated = resources.resource_groups.update(rg_name, {"tags": {"env": "test"}})
    assert updated.tags == {"env": "test"}
    assert resources.resource_groups.get(rg_name).tags == {"env": "test"}


def test_missing_group_is_resource_group_not_found(resources: ResourceManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        resources.resource_groups.get("no-such-group")
    assert info.value.error is not None
    assert info.value.error.code == "ResourceGroupNotFound"
    assert info.value.error.message == "Resource group 'no-such-group' could not be found."


def test_invalid_name_is_rejected(resources: ResourceManagementClient) -> None:
    with pytest.raises(HttpResponseError) as info:
        resources.resource_groups.create_or_update("bad name!", {"location": "westus"})
    assert info.value.status_code == 400
    assert info.value.error is not None
    assert info.value.error.code == "InvalidResourceGroup"


def test_location_is_required(raw: RawArm, rg_name: str) -> None:
    response = raw.request(
        "PUT", f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{rg_name}", json={}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "LocationRequired"


def test_delete_is_a_long_running_operation_with_arm_headers(raw: RawArm, rg_name: str) -> None:
    path = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{rg_name}"
    raw.request("PUT", path, json={"location": "westus"})
    response = raw.request("DELETE", path)
    assert response.status_code == 202
    assert response.headers["Retry-After"] == "1"
    status_url = response.headers["Azure-AsyncOperation"]
    assert status_url.startswith(raw.server.endpoint + "/subscriptions/")
    assert response.headers["Location"].startswith(raw.server.endpoint + "/subscriptions/")
    for _ in range(50):
        status = raw.http.get(status_url, headers={"Authorization": f"Bearer {raw.token}"}).json()
        if status["status"] != "InProgress":
            break
    assert status["status"] == "Succeeded"
    assert raw.request("GET", path).status_code == 404


def test_delete_removes_contained_resources(
    resources: ResourceManagementClient, msi: ManagedServiceIdentityClient, rg_name: str
) -> None:
    resources.resource_groups.create_or_update(rg_name, {"location": "westus"})
    msi.user_assigned_identities.create_or_update(rg_name, "doomed", {"location": "westus"})
    resources.resource_groups.begin_delete(rg_name).result()
    assert resources.resource_groups.check_existence(rg_name) is False
    resources.resource_groups.create_or_update(rg_name, {"location": "westus"})
    try:
        assert list(msi.user_assigned_identities.list_by_resource_group(rg_name)) == []
    finally:
        resources.resource_groups.begin_delete(rg_name).result()


def test_delete_of_missing_group_is_not_found(resources: ResourceManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        resources.resource_groups.begin_delete("never-existed").result()
    assert info.value.error is not None
    assert info.value.error.code == "ResourceGroupNotFound"


def test_resource_listings_with_filter(
    resources: ResourceManagementClient, msi: ManagedServiceIdentityClient, group: Any, rg_name: str
) -> None:
    msi.user_assigned_identities.create_or_update(rg_name, "listed", {"location": "westus"})
    in_group = [r.name for r in resources.resources.list_by_resource_group(rg_name)]
    typed = [
        r.id
        for r in resources.resources.list(
            filter="resourceType eq 'Microsoft.ManagedIdentity/userAssignedIdentities'"
        )
    ]
    assert in_group == ["listed"]
    assert f"{group.id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/listed" in typed


def test_unknown_resource_namespace(raw: RawArm, group: Any) -> None:
    response = raw.request("GET", f"{group.id}/providers/Microsoft.Nope/things/x")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "InvalidResourceNamespace"


def test_subscriptions_are_listed(resources: ResourceManagementClient, raw: RawArm) -> None:
    response = raw.request("GET", "/subscriptions", api_version="2022-12-01")
    body = response.json()["value"]
    assert [s["subscriptionId"] for s in body] == [raw.server.subscription_id]
    assert body[0]["tenantId"] == raw.server.tenant_id
    assert body[0]["state"] == "Enabled"
