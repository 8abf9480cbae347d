"""Container groups through the ARM API of a running moorage server, for the runtime benchmark.

* :class:`ArmGroups` — an async client for ``Microsoft.ContainerInstance/containerGroups`` (PUT,
  GET, DELETE) with the bootstrap principal's token, as the SDKs send them (api-version
  2023-05-01).
* :func:`put_to_running` — the time from sending a PUT until ``GET`` shows the group
  provisioned and ``Running`` (polled every ``POLL_S``).
* :func:`hundred_containers` — many containers through ARM, then the server's memory, the process
  tree around it, deletion, and a check that nothing is left on the host.

This is benchmark code, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

ACI_API = "2023-05-01"
POLL_S = 0.02  # PUT → Running is polled this often (its resolution)
CPU, MEMORY_GB = 1.0, 0.5


@dataclass(frozen=True)
class GroupImage:
    reference: str
    server: str  # login server
    username: str
    password: str


class ArmGroups:
    """Container groups in one resource group of one server."""

    def __init__(
        self, endpoint: str, ca_path: str, token: str, subscription: str, resource_group: str
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=endpoint,
            verify=ssl.create_default_context(cafile=ca_path),
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            limits=httpx.Limits(max_connections=16),
        )
        self._base = (
            f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            "Microsoft.ContainerInstance/containerGroups"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _path(self, name: str) -> str:
        return f"{self._base}/{name}"

    async def put(self, name: str, image: GroupImage, containers: int = 1) -> int:
        """PUT a group of ``containers`` containers running the image's own command; returns the
        status (201 on create). Raises with the body on anything else."""
        body = {
            "location": "westus",
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Always",
                "imageRegistryCredentials": [
                    {"server": image.server, "username": image.username, "password": image.password}
                ],
                "containers": [
                    {
                        "name": f"c{index}",
                        "properties": {
                            "image": image.reference,
                            "resources": {"requests": {"cpu": CPU, "memoryInGB": MEMORY_GB}},
                        },
                    }
                    for index in range(containers)
                ],
            },
        }
        response = await self._http.put(self._path(name), params={"api-version": ACI_API}, json=body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"PUT {name}: {response.status_code} {response.text[:2000]}")
        return response.status_code

    async def get(self, name: str) -> dict[str, Any] | None:
        response = await self._http.get(self._path(name), params={"api-version": ACI_API})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RuntimeError(f"GET {name}: {response.status_code} {response.text[:2000]}")
        return dict(response.json())

    async def state(self, name: str) -> str:
        """``Running`` once provisioned and running; ``Failed: …`` when provisioning failed;
        otherwise the provisioning state."""
        body = await self.get(name)
        if body is None:
            return "NotFound"
        props = body["properties"]
        if props["provisioningState"] == "Failed":
            return f"Failed: {props.get('instanceView', {}).get('events') or body}"
        if (
            props["provisioningState"] == "Succeeded"
            and props.get("instanceView", {}).get("state") == "Running"
        ):
            return "Running"
        return str(props["provisioningState"])

    async def wait_running(self, name: str, *, poll_s: float = POLL_S, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            state = await self.state(name)
            if state == "Running":
                return
            if state.startswith("Failed") or time.monotonic() > deadline:
                raise RuntimeError(f"group {name} did not run: {state}")
            await asyncio.sleep(poll_s)

    async def delete(self, name: str, *, timeout_s: float = 300) -> None:
        """DELETE and wait until GET answers 404."""
        response = await self._http.delete(self._path(name), params={"api-version": ACI_API})
        if response.status_code not in (200, 202, 204):
            raise RuntimeError(f"DELETE {name}: {response.status_code} {response.text[:2000]}")
        deadline = time.monotonic() + timeout_s
        while await self.get(name) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"group {name} was not deleted")
            await asyncio.sleep(0.05)


async def put_to_running(arm: ArmGroups, name: str, image: GroupImage) -> float:
    """Seconds from sending the PUT until GET shows the group Running (the group stays)."""
    began = time.perf_counter()
    await arm.put(name, image)
    await arm.wait_running(name)
    return time.perf_counter() - began


class ServerHost(Protocol):
    """What the bench can see of the server's runtime on the host."""

    def container_pids(self) -> dict[str, int]:
        """Init pids of the server's running containers, by runc id."""

    def conmon_pids(self) -> list[int]:
        """The conmon processes supervising the server's containers."""

    def leftovers(self) -> list[str]:
        """Host objects of the server's runtime still there (containers, mounts, netns, ...)."""


# -- the process tree and memory ---------------------------------------------------------------------


def status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads", "PPid"):
            values[key] = int(rest.split()[0])
    return values


def exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "?"


def parents() -> dict[int, int]:
    """pid → parent pid of every process."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            ppid = status(int(entry.name)).get("PPid")
            if ppid is not None:
                found[int(entry.name)] = ppid
    return found


def descendants(pid: int) -> list[int]:
    tree = parents()
    children: dict[int, list[int]] = {}
    for child, parent in tree.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def python_processes() -> list[int]:
    return [
        int(e.name)
        for e in os.scandir("/proc")
        if e.name.isdigit() and "python" in os.path.basename(exe_of(int(e.name)))
    ]


def counted(exes: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for exe in exes:
        counts[exe] = counts.get(exe, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


# -- 100 containers ---------------------------------------------------------------------------------


async def hundred_containers(
    arm: ArmGroups,
    image: GroupImage,
    *,
    server_pid: int,
    containers: int,
    groups: int,
    host: ServerHost,
    parallel: int = 8,
) -> dict[str, Any]:
    """Create ``containers`` running containers in ``groups`` groups through ARM (``parallel``
    PUTs at a time), sample the server's memory while they run, inspect the process tree, delete
    every group and list what is left on the host."""
    per_group = containers // groups
    names = [f"rss{g:03d}" for g in range(groups)]
    python_before = python_processes()
    idle = status(server_pid)
    peak = {"VmRSS": idle.get("VmRSS", 0)}
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            now = status(server_pid).get("VmRSS", 0)
            peak["VmRSS"] = max(peak["VmRSS"], now)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    gate = asyncio.Semaphore(parallel)

    async def one(name: str, work: Callable[[str], Awaitable[None]]) -> None:
        async with gate:
            await work(name)

    async def create(name: str) -> None:
        await arm.put(name, image, per_group)
        await arm.wait_running(name, poll_s=0.2)

    result: dict[str, Any] = {"requested": per_group * groups, "groups": groups, "per_group": per_group}
    try:
        began = time.perf_counter()
        await asyncio.gather(*(one(n, create) for n in names))
        result["seconds_to_start"] = time.perf_counter() - began
        await asyncio.sleep(2.0)  # settle: the last LROs finish, watchers wait
        samples = []
        for _ in range(10):
            samples.append(status(server_pid).get("VmRSS", 0))
            await asyncio.sleep(0.3)
        server = status(server_pid)
        running = host.container_pids()
        tree = descendants(server_pid)
        supervisors = [exe_of(status(pid).get("PPid", 0)) for pid in running.values()]
        conmons = host.conmon_pids()
        conmon_rss = [status(pid).get("VmRSS", 0) for pid in conmons]
        python_during = python_processes()
        result.update(
            running=len(running),
            idle_vmrss_kib=idle.get("VmRSS", 0),
            vmrss_kib=statistics.median(samples),
            vmrss_kib_max=max(samples),
            peak_vmrss_kib=max(peak["VmRSS"], *samples),
            vmhwm_kib=server.get("VmHWM", 0),
            rss_anon_kib=server.get("RssAnon", 0),
            threads=server.get("Threads", 0),
            server_descendants=counted([exe_of(pid) for pid in tree]),
            python_descendants=sum(1 for pid in tree if "python" in os.path.basename(exe_of(pid))),
            supervisors=counted(supervisors),
            python_supervisors=sum(1 for exe in supervisors if "python" in os.path.basename(exe)),
            conmon_rss_kib_median=statistics.median(conmon_rss) if conmon_rss else 0,
            conmons=len(conmons),
            python_processes_before=len(python_before),
            python_processes_during=len(python_during),
        )
    finally:
        stop.set()
        await sampler
        began = time.perf_counter()
        await asyncio.gather(*(one(n, arm.delete) for n in names), return_exceptions=True)
        result["seconds_to_delete"] = time.perf_counter() - began
    result["after_delete_vmrss_kib"] = status(server_pid).get("VmRSS", 0)
    result["leftovers"] = host.leftovers()
    return result
