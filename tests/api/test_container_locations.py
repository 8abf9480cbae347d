"""Location-level ``Microsoft.ContainerInstance`` operations through the official SDK
(``aci.location.list_usage``/``list_capabilities``/``list_cached_images``, ``aci.operations.list``)
and as raw ARM bodies against the 2023-05-01 OpenAPI shapes: usages count the subscription's groups
and their requested cores per region, cached images are the images this host holds unpacked for
the subscription's groups, and ``locations/{l}/operations/{id}`` is ACI's spelling of an
asynchronous operation's status.

Groups here live in ``northeurope``, where no other test puts any, so the figures are exact.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.containerinstance import ContainerInstanceManagementClient

from tests.api.aci_support import PrivateImage, one_container_group, private_image
from tests.api.conftest import RawArm
from tests.conftest import sdk_kwargs
from tests.runtime_support import runc_unavailable
from tests.server import RunningServer

_F = TypeVar("_F", bound=Callable[..., Any])
RUNC_UNAVAILABLE = runc_unavailable()
NAMESPACE = "Microsoft.ContainerInstance"
REGION = "northeurope"  # no other test creates container groups here
EMPTY_REGION = "uksouth"
API = "2023-05-01"
IDLE = "trap 'exit 0' TERM; sleep 3600 & wait"


def runs_containers(test: _F) -> _F:
    """Marks a test that runs containers: it needs root, runc and conmon."""
    skip = pytest.mark.skipif(RUNC_UNAVAILABLE is not None, reason=str(RUNC_UNAVAILABLE))
    marked: _F = pytest.mark.root(skip(test))
    return marked


@pytest.fixture(scope="module")
def aci(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[ContainerInstanceManagementClient]:
    with ContainerInstanceManagementClient(
        credential, server.subscription_id, **sdk_kwargs(server)
    ) as client:
        yield client


@pytest.fixture(scope="module")
def source(raw: RawArm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateImage]:
    with private_image(raw, tmp_path_factory.mktemp("aci-locations"), "loc") as made:
        yield made


@pytest.fixture
def running(aci: ContainerInstanceManagementClient, source: PrivateImage) -> Iterator[str]:
    """A running group in ``REGION`` (one container requesting 1.5 cores), deleted afterwards."""
    name = f"cg-loc-{uuid.uuid4().hex[:8]}"
    group = one_container_group(source, ["/bin/sh", "-c", IDLE], restart="Always", location=REGION, cpu=1.5)
    created = aci.container_groups.begin_create_or_update(source.group, name, group).result()
    assert created.provisioning_state == "Succeeded"
    yield name
    aci.container_groups.begin_delete(source.group, name).result()


def location_path(server: RunningServer, location: str, what: str) -> str:
    return f"/subscriptions/{server.subscription_id}/providers/{NAMESPACE}/locations/{location}/{what}"


def usage(aci: ContainerInstanceManagementClient, location: str = REGION) -> dict[str, int]:
    return {u.name.value: u.current_value for u in aci.location.list_usage(location)}


# -- usages ---------------------------------------------------------------------------------------


def test_usages_are_spec_shaped(raw: RawArm) -> None:
    response = raw.request("GET", location_path(raw.server, "West US", "usages"), api_version=API)
    assert response.status_code == 200, response.text
    items = response.json()["value"]
    assert [u["name"]["value"] for u in items] == ["ContainerGroups", "StandardCores"]
    for item in items:
        assert set(item) == {"id", "unit", "currentValue", "limit", "name"}
        assert item["id"] == location_path(raw.server, "westus", f"usages/{item['name']['value']}")
        assert item["unit"] == "Count"
        assert isinstance(item["currentValue"], int)
        assert item["limit"] > 0
        assert item["name"]["localizedValue"]


def test_usages_of_an_empty_region_are_zero(aci: ContainerInstanceManagementClient) -> None:
    assert usage(aci, EMPTY_REGION) == {"ContainerGroups": 0, "StandardCores": 0}


@runs_containers
def test_usages_count_groups_and_requested_cores(
    aci: ContainerInstanceManagementClient, source: PrivateImage, running: str
) -> None:
    assert usage(aci) == {"ContainerGroups": 1, "StandardCores": 2}  # 1.5 cores, rounded up
    aci.container_groups.stop(source.group, running)
    assert usage(aci) == {"ContainerGroups": 1, "StandardCores": 0}  # a stopped group holds none


# -- capabilities ---------------------------------------------------------------------------------


def test_capabilities(aci: ContainerInstanceManagementClient) -> None:
    [linux] = aci.location.list_capabilities("West US")
    assert (linux.resource_type, linux.os_type, linux.location) == ("containerGroups", "Linux", "westus")
    assert (linux.ip_address_type, linux.gpu) == ("Public", "None")
    assert linux.capabilities.max_cpu == 4.0
    assert linux.capabilities.max_memory_in_gb == 16.0
    assert linux.capabilities.max_gpu_count == 0.0


# -- cached images --------------------------------------------------------------------------------


def test_no_cached_images_in_a_region_without_groups(aci: ContainerInstanceManagementClient) -> None:
    assert list(aci.location.list_cached_images(EMPTY_REGION)) == []


@runs_containers
def test_cached_images_are_the_unpacked_images_of_the_subscriptions_groups(
    aci: ContainerInstanceManagementClient, raw: RawArm, source: PrivateImage, running: str
) -> None:
    cached = [(c.image, c.os_type) for c in aci.location.list_cached_images(REGION)]
    assert cached == [(source.image, "Linux")]
    response = raw.request("GET", location_path(raw.server, REGION, "cachedImages"), api_version=API)
    assert response.status_code == 200, response.text
    assert response.json() == {"value": [{"osType": "Linux", "image": source.image}]}
    # Regions are apart: the image is cached for REGION's groups only.
    assert list(aci.location.list_cached_images(EMPTY_REGION)) == []


# -- operations -----------------------------------------------------------------------------------


def test_operations_catalog(aci: ContainerInstanceManagementClient) -> None:
    operations = {o.name: o for o in aci.operations.list()}
    for name in (
        "containerGroups/read",
        "containerGroups/write",
        "containerGroups/containers/logs/read",
        "locations/usages/read",
        "locations/cachedImages/read",
        "locations/capabilities/read",
        "locations/operations/read",
    ):
        entry = operations[f"{NAMESPACE}/{name}"]
        assert entry.display.provider == "Microsoft Container Instance"
        assert entry.display.operation
        assert entry.display.description
        assert entry.origin == "User"


def test_location_operation_shows_a_group_operation(raw: RawArm, source: PrivateImage) -> None:
    name = f"cg-op-{uuid.uuid4().hex[:8]}"
    scope = f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{source.group}"
    path = f"{scope}/providers/{NAMESPACE}/containerGroups/{name}"
    body = one_container_group(source, ["/bin/sh", "-c", "true"], location=REGION).serialize()
    created = raw.request("PUT", path, api_version=API, json=body)
    try:
        assert created.status_code == 201, created.text
        operation_id = created.headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[1]
        aci_path = location_path(raw.server, REGION, f"operations/{operation_id}")

        def ended() -> dict[str, Any] | None:
            response = raw.request("GET", aci_path, api_version=API)
            assert response.status_code == 200, response.text
            shown = dict(response.json())
            return shown if shown["status"] != "InProgress" else None

        shown = eventually(ended)
        assert shown["id"] == aci_path
        assert shown["name"] == operation_id
        assert shown["status"] in ("Succeeded", "Failed")  # Failed without runc: the run, not the route
        assert shown["startTime"] <= shown["endTime"]
        elsewhere = raw.request(
            "GET", location_path(raw.server, EMPTY_REGION, f"operations/{operation_id}"), api_version=API
        )
        assert elsewhere.status_code == 404, elsewhere.text
        assert elsewhere.json()["error"]["code"] == "OperationNotFound"
    finally:
        raw.request("DELETE", path, api_version=API)


def test_unknown_location_operation_is_not_found(raw: RawArm) -> None:
    response = raw.request(
        "GET", location_path(raw.server, REGION, f"operations/{uuid.uuid4()}"), api_version=API
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "OperationNotFound"


def eventually(probe: Callable[[], dict[str, Any] | None], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (value := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the operation to end")
        time.sleep(0.2)
    return value
