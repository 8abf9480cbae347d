"""The server's periodic reconciler (``MOORAGE_RUNTIME_RECONCILE_INTERVAL``), end to end: a real
``moorage serve`` with the runc runtime and a half-second interval, container groups created
through ARM from an image pushed to its own registry, and debris planted on the host under the
server's prefix while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from moorage import config
from moorage.core.errors import InvalidArgument, MoorageError
from moorage.instances.runtime.base import ContainerSpec, SandboxSpec
from moorage.instances.runtime.runc import RuncRuntime, cgroups, conmon
from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_support import admin_password, cert_dir, create_registry, skopeo, unique_name
from tests.images import busybox_image, write_layout
from tests.runtime_support import (
    NETNS_DIR,
    LoopbackNetwork,
    build_busybox_rootfs,
    runc_unavailable,
    unique_prefix,
)
from tests.server import RunningServer

UNAVAILABLE = runc_unavailable()
ACI_API = "2023-05-01"
INTERVAL_S = 0.5
IDLE = "trap 'exit 0' TERM; sleep 3600 & wait"
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def eventually(probe: Callable[[], _T | None], timeout: float = 30.0, what: str = "condition") -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def needs_runc(test: _F) -> _F:
    """Marks a test that runs containers (root, runc and conmon)."""
    marked: _F = pytest.mark.root(pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))(test))
    return marked


# -- the setting -----------------------------------------------------------------------------------


def test_the_interval_setting() -> None:
    assert config.load({}).runtime_reconcile_interval_s == 60.0
    assert config.load({"MOORAGE_RUNTIME_RECONCILE_INTERVAL": "0"}).runtime_reconcile_interval_s == 0.0
    assert config.load({"MOORAGE_RUNTIME_RECONCILE_INTERVAL": "2.5"}).runtime_reconcile_interval_s == 2.5
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(InvalidArgument) as info:
            config.load({"MOORAGE_RUNTIME_RECONCILE_INTERVAL": bad})
        assert info.value.code == "InvalidSetting"
        assert "MOORAGE_RUNTIME_RECONCILE_INTERVAL" in info.value.message


# -- a server reconciling every half second ---------------------------------------------------------


@dataclass(frozen=True)
class Plane:
    server: RunningServer
    raw: RawArm
    group: str  # resource group
    image: str
    credentials: list[dict[str, str]]

    @property
    def prefix(self) -> str:
        return self.server.runtime_prefix

    @property
    def state_dir(self) -> Path:
        return self.server.home / "node" / "runtime"

    def path(self, name: str) -> str:
        return (
            f"/subscriptions/{self.server.subscription_id}/resourceGroups/{self.group}/providers/"
            f"Microsoft.ContainerInstance/containerGroups/{name}"
        )

    def put(self, name: str, command: list[str], restart: str = "Always") -> None:
        body = {
            "location": "westus",
            "properties": {
                "osType": "Linux",
                "restartPolicy": restart,
                "imageRegistryCredentials": self.credentials,
                "containers": [
                    {
                        "name": "main",
                        "properties": {
                            "image": self.image,
                            "command": command,
                            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                        },
                    }
                ],
            },
        }
        response = self.raw.request("PUT", self.path(name), api_version=ACI_API, json=body)
        assert response.status_code == 201, response.text

    def get(self, name: str) -> dict[str, Any]:
        response = self.raw.request("GET", self.path(name), api_version=ACI_API)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def running(self, name: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = self.get(name)
            props = body["properties"]
            assert props["provisioningState"] != "Failed", props
            ok = props["provisioningState"] == "Succeeded" and props["instanceView"]["state"] == "Running"
            return body if ok else None

        return eventually(probe, what=f"group {name} to run")

    def delete(self, name: str) -> None:
        response = self.raw.request("DELETE", self.path(name), api_version=ACI_API)
        assert response.status_code in (200, 202, 204), response.text
        eventually(
            lambda: self.raw.request("GET", self.path(name), api_version=ACI_API).status_code == 404,
            what=f"group {name} to go",
        )


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    where = tmp_path_factory.mktemp("reconciling")
    server = RunningServer(where / "home", extra_env={"MOORAGE_RUNTIME_RECONCILE_INTERVAL": str(INTERVAL_S)})
    server.start()
    try:
        raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
        with raw.http:
            group = "rg-reconcile"
            rg = f"/subscriptions/{server.subscription_id}/resourcegroups/{group}"
            assert raw.request("PUT", rg, json={"location": "westus"}).status_code in (200, 201)
            registry = create_registry(raw, group, unique_name("rec"), adminUserEnabled=True)
            password = admin_password(raw, registry)
            layout = write_layout(where / "layout", "v1", busybox_image())
            pushed = skopeo(
                "copy",
                "--dest-cert-dir",
                str(cert_dir(server.ca_path, where / "certs")),
                "--dest-creds",
                f"{registry.name}:{password}",
                f"oci:{layout}:v1",
                f"docker://{registry.login_server}/idle:v1",
            )
            assert pushed.returncode == 0, pushed.stderr
            credentials = [{"server": registry.login_server, "username": registry.name, "password": password}]
            yield Plane(server, raw, group, f"{registry.login_server}/idle:v1", credentials)
    finally:
        server.stop()
        server.remove_runtime_objects()


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _runc_ids() -> list[str]:
    return _sh("runc", "--root", "/run/moorage/runc", "list", "-q").stdout.split()


def _mounted(path: Path) -> bool:
    return any(
        line.split(" ")[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )


def _events(body: dict[str, Any]) -> dict[str, int]:
    view = body["properties"]["containers"][0]["properties"]["instanceView"]
    return {event["name"]: event["count"] for event in view["events"]}


def _stray_container(plane: Plane, where: Path) -> RuncRuntime:
    """A container named with the server's prefix that the server has no record of (as a bundle
    removed by hand, or another incarnation's, would leave it): runc state, conmon and cgroup. It
    is made by a runtime of this test's with the server's prefix but a state directory and
    network of its own (the server may remove the container the moment it shows up: retried)."""
    runtime = RuncRuntime(
        where / "state", network=LoopbackNetwork(where / "net", unique_prefix()), prefix=plane.prefix
    )
    rootfs = build_busybox_rootfs(where / "rootfs")

    async def make() -> None:
        await runtime.create_sandbox(SandboxSpec(id="stray", hostname="stray"))
        for _ in range(10):
            with contextlib.suppress(MoorageError):  # e.g. removed by the server mid-create
                await runtime.delete("stray")
                await runtime.create(
                    ContainerSpec(
                        id="stray", sandbox_id="stray", rootfs_layers=[rootfs], args=["sleep", "1000"]
                    )
                )
                await runtime.start("stray")
                return
        raise AssertionError("the stray container could not be made")

    asyncio.run(make())
    return runtime


@needs_runc
def test_debris_planted_while_the_server_runs_is_removed(plane: Plane, tmp_path: Path) -> None:
    plane.put("keeper", ["/bin/sh", "-c", IDLE])
    before = plane.running("keeper")
    prefix, state = plane.prefix, plane.state_dir
    stray = _stray_container(plane, tmp_path / "stray")

    # Loose debris in the server's state and on the host: a network namespace, a mount in a bundle
    # without a record, a sandbox directory without a record holding a tmpfs, exit and socket
    # files, cgroups, a host-port element.
    assert _sh("ip", "netns", "add", f"{prefix}-lostns").returncode == 0
    bundle_mount = state / "containers" / "lostbundle" / "rootfs"
    volume_mount = state / "sandboxes" / "lostsandbox" / "volumes" / "v"
    for point, top in ((bundle_mount, bundle_mount.parent), (volume_mount, volume_mount.parents[1])):
        # Mounted aside and moved in whole: the server would remove a half-made directory.
        staged = tmp_path / "staging" / point.relative_to(top.parent)
        staged.mkdir(parents=True)
        assert _sh("mount", "-t", "tmpfs", "tmpfs", str(staged)).returncode == 0
        (tmp_path / "staging" / top.name).rename(top)
        assert _mounted(point)
    exit_file = state / "exits" / f"{prefix}-lostexit"
    exit_file.write_text("0")
    socket_link = state / "conmon" / f"{prefix}-lostexit"
    socket_link.symlink_to(tmp_path)
    cgroup_dirs = [
        h / "moorage" / f"{prefix}-lostcgroup" for h in cgroups.hierarchies() if (h / "moorage").is_dir()
    ]
    assert cgroup_dirs
    for directory in cgroup_dirs:
        directory.mkdir()
    stray_ip = plane.server.runtime_subnet.rsplit(".", 1)[0] + ".250"  # nobody's address
    element = f"{{ 127.0.0.1 . tcp . 47999 : {stray_ip} . 80 }}"
    assert _sh("nft", "add", "element", "ip", prefix, "hostports", element).returncode == 0

    def gone() -> bool:
        return not (
            (NETNS_DIR / f"{prefix}-lostns").exists()
            or (state / "containers" / "lostbundle").exists()
            or (state / "sandboxes" / "lostsandbox").exists()
            or _mounted(bundle_mount)
            or _mounted(volume_mount)
            or exit_file.exists()
            or socket_link.is_symlink()
            or any(d.exists() for d in cgroup_dirs)
            or any((h / "moorage" / f"{prefix}-stray").exists() for h in cgroups.hierarchies())
            or conmon.find_conmons({f"{prefix}-stray"})
            or f"{prefix}-stray" in _runc_ids()
            or stray_ip in _sh("nft", "list", "map", "ip", prefix, "hostports").stdout
        )

    try:
        eventually(gone, timeout=30, what="the debris to be removed")
    finally:
        asyncio.run(stray.delete_sandbox("stray"))  # its bundle and netns were never the server's

    # The running group was not touched.
    after = plane.running("keeper")
    view = after["properties"]["containers"][0]["properties"]["instanceView"]
    assert view["restartCount"] == 0
    assert (
        view["currentState"]["startTime"]
        == (before["properties"]["containers"][0]["properties"]["instanceView"]["currentState"]["startTime"])
    )
    assert _events(after) == {"Pulling": 1, "Pulled": 1, "Created": 1, "Started": 1}
    plane.delete("keeper")


@needs_runc
def test_an_exit_while_the_reconciler_runs_reaches_the_instance_view(plane: Plane) -> None:
    plane.put("brief", ["/bin/sh", "-c", "sleep 2; exit 3"], restart="Never")

    def terminated() -> dict[str, Any] | None:
        body = plane.get("brief")
        view = body["properties"]["containers"][0]["properties"]["instanceView"]
        return body if (view.get("currentState") or {}).get("state") == "Terminated" else None

    body = eventually(terminated, what="the exit to be recorded")
    view = body["properties"]["containers"][0]["properties"]["instanceView"]
    assert view["currentState"]["exitCode"] == 3
    assert view["currentState"]["detailStatus"] == "Error"
    assert view["restartCount"] == 0
    assert body["properties"]["instanceView"]["state"] == "Failed"
    # Recorded once: rounds and the watcher never double up.
    time.sleep(4 * INTERVAL_S)
    again = plane.get("brief")
    assert again["properties"]["containers"][0]["properties"]["instanceView"] == view
    plane.delete("brief")


@needs_runc
def test_groups_come_and_go_under_the_reconciler_and_leave_nothing(plane: Plane) -> None:
    names = [f"churn{i}" for i in range(3)]
    for _ in range(2):
        for name in names:
            plane.put(name, ["/bin/sh", "-c", IDLE])
        for name in names:
            body = plane.running(name)
            assert _events(body) == {"Pulling": 1, "Pulled": 1, "Created": 1, "Started": 1}
        for name in names:
            plane.delete(name)
    state = plane.state_dir
    assert list((state / "containers").iterdir()) == []
    assert list((state / "sandboxes").iterdir()) == []
    assert not [e for e in NETNS_DIR.iterdir() if e.name.startswith(f"{plane.prefix}-")]
    assert not [r for r in _runc_ids() if r.startswith(f"{plane.prefix}-")]
    assert not [r for r in conmon.find_conmons() if r.startswith(f"{plane.prefix}-")]
    assert "elements" not in _sh("nft", "list", "map", "ip", plane.prefix, "hostports").stdout
