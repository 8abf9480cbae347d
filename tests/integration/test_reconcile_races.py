"""The runc backend's reconciler running while operations are in flight (real runc, conmon,
mounts, cgroups and network namespaces).

A create makes its host objects before it writes its record, so for a while they look exactly like
the debris of a crashed create. These tests hold creates at that point — a network backend that
waits after ``ip netns add``, a conmon wrapper that holds conmon's report after ``runc create`` —
and run reconciliation rounds against them; then they hammer creates and deletes while a
reconcile loop runs without pause.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from moorage.instances.runtime.base import (
    ContainerSpec,
    ContainerStatus,
    PortMapping,
    SandboxSpec,
)
from moorage.instances.runtime.runc import ReconcileReport, RuncRuntime, cgroups, conmon
from moorage.instances.runtime.runc.network import SandboxNetwork
from tests.runtime_support import (
    CONMON,
    NETNS_DIR,
    LoopbackNetwork,
    build_busybox_rootfs,
    leftovers,
    runc_unavailable,
    unique_prefix,
)

UNAVAILABLE = runc_unavailable()
pytestmark = [pytest.mark.root, pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


def spec(container_id: str, sandbox_id: str, rootfs: Path, args: Sequence[str]) -> ContainerSpec:
    return ContainerSpec(
        id=container_id, sandbox_id=sandbox_id, rootfs_layers=[rootfs], args=args, stop_grace_s=0
    )


async def delete_everything(rt: RuncRuntime) -> None:
    for sandbox in await rt.sandboxes():
        await rt.delete_sandbox(sandbox.id)
    for container in await rt.containers():
        await rt.delete(container.id)
    await rt.reconcile()


async def eventually(probe: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def clean(report: ReconcileReport) -> bool:
    return report.removed == [] and report.errors == []


# -- a sandbox create held after its network namespace exists ---------------------------------------


class GatedNetwork(LoopbackNetwork):
    """A loopback network whose ``create`` stops after ``ip netns add`` until released."""

    def __init__(self, state_dir: Path, prefix: str) -> None:
        super().__init__(state_dir, prefix)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def create(self, sandbox_id: str, ports: Sequence[PortMapping]) -> tuple[str, str]:
        made = await super().create(sandbox_id, ports)
        self.entered.set()
        await self.release.wait()
        return made


async def test_a_sandbox_create_in_flight_is_left_alone(tmp_path: Path, rootfs: Path, prefix: str) -> None:
    network = GatedNetwork(tmp_path / "net", prefix)
    rt = RuncRuntime(tmp_path / "state", network=network, prefix=prefix)
    creating = asyncio.create_task(rt.create_sandbox(SandboxSpec(id="held", hostname="held")))
    try:
        await asyncio.wait_for(network.entered.wait(), 30)
        # The sandbox's directory and namespace exist, its record does not: debris to a round
        # that does not know the create is in flight.
        assert rt.layout.sandbox("held").is_dir()
        assert not (rt.layout.sandbox("held") / "sandbox.json").exists()
        assert (NETNS_DIR / f"{prefix}-held").exists()
        for _ in range(3):
            assert clean(await rt.reconcile())
        assert (NETNS_DIR / f"{prefix}-held").exists()
        assert rt.layout.sandbox("held").is_dir()

        network.release.set()
        sandbox = await asyncio.wait_for(creating, 30)
        assert sandbox.netns == str(NETNS_DIR / f"{prefix}-held")
        await rt.create(spec("inside", "held", rootfs, ["sleep", "1000"]))
        assert (await rt.start("inside")).status is ContainerStatus.RUNNING
        assert clean(await rt.reconcile())
    finally:
        network.release.set()
        await asyncio.gather(creating, return_exceptions=True)
        await delete_everything(rt)
    assert leftovers(prefix, rt.layout.state_dir) == []


# -- a container create held after runc create, before its record ----------------------------------


def gated_conmon(directory: Path) -> tuple[Path, Path, Path]:
    """A conmon wrapper: it runs the real conmon with the sync pipe pointed at a FIFO of its own,
    and hands conmon's report (sent once ``runc create`` is done) to the runtime only when the
    gate file exists. Returns (wrapper, reported: a file made once the report is in, gate).
    (bash: the sync pipe's descriptor may have two digits, which dash cannot redirect to.)"""
    gate = directory / "gate"
    reported = directory / "reported"
    wrapper = directory / "gated-conmon"
    wrapper.write_text(
        f"""#!/bin/bash
set -e
sync_fd=$_OCI_SYNCPIPE
fifo="{directory}/sync.$$"
mkfifo "$fifo"
exec 8<>"$fifo"
rm "$fifo"
_OCI_SYNCPIPE=8 {CONMON} "$@"
read -r report <&8
touch "{reported}"
while [ ! -e "{gate}" ]; do sleep 0.02; done
printf '%s\\n' "$report" >&"$sync_fd"
"""
    )
    wrapper.chmod(0o755)
    return wrapper, reported, gate


async def test_a_container_create_in_flight_is_left_alone(tmp_path: Path, rootfs: Path, prefix: str) -> None:
    wrapper, reported, gate = gated_conmon(tmp_path)
    rt = RuncRuntime(
        tmp_path / "state",
        network=LoopbackNetwork(tmp_path / "net", prefix),
        prefix=prefix,
        conmon=str(wrapper),
    )
    await rt.create_sandbox(SandboxSpec(id="box", hostname="box"))
    runc_id = rt.runc_id("held")
    bundle = rt.layout.bundle("held")
    creating = asyncio.create_task(rt.create(spec("held", "box", rootfs, ["sleep", "1000"])))
    try:
        # Held after `runc create`: every host object of the container exists, its record not.
        await eventually(reported.exists, what="conmon's report of the held create")
        assert conmon.find_conmons({runc_id})
        listed = {entry.id: entry.status for entry in await rt.runc.list()}
        assert listed.get(runc_id) == "created"
        assert not (bundle / "meta.json").exists()
        assert runc_id in cgroups.children(rt.cgroup_parent)
        rootfs_mounted = f" {bundle / 'rootfs'} "
        assert rootfs_mounted in Path("/proc/self/mountinfo").read_text()

        for _ in range(3):
            assert clean(await rt.reconcile())
        assert conmon.find_conmons({runc_id})
        assert {entry.id: entry.status for entry in await rt.runc.list()}.get(runc_id) == "created"
        assert runc_id in cgroups.children(rt.cgroup_parent)
        assert rootfs_mounted in Path("/proc/self/mountinfo").read_text()
        assert (bundle / "config.json").exists()
        assert not creating.done()

        gate.touch()
        created = await asyncio.wait_for(creating, 30)
        assert created.status is ContainerStatus.CREATED
        assert (await rt.start("held")).status is ContainerStatus.RUNNING
        assert (await rt.exec("held", ["echo", "intact"])).stdout == "intact\n"
        report = await rt.reconcile()
        assert clean(report)
        assert report.adopted == ["held"]
    finally:
        gate.touch()
        await asyncio.gather(creating, return_exceptions=True)
        await delete_everything(rt)
    assert leftovers(prefix, rt.layout.state_dir) == []


# -- creates and deletes hammered while a reconcile loop runs ----------------------------------------


@pytest.fixture
async def network_runtime(tmp_path: Path, prefix: str) -> AsyncIterator[RuncRuntime]:
    """A runtime on the real sandbox network (CNI bridge, host-local, our nftables table), so that
    the network sweep (namespaces, IPAM, host-port elements, files) races the creates too."""
    octets = random.randint(100, 250), random.randint(0, 255)
    network = SandboxNetwork(
        tmp_path / "net",
        bridge=f"{prefix[:10]}br",
        subnet=f"10.{octets[0]}.{octets[1]}.0/24",
        prefix=prefix,
        nft_table=f"{prefix}_t",
    )
    rt = RuncRuntime(tmp_path / "state", network=network, prefix=prefix)
    try:
        yield rt
    finally:
        await delete_everything(rt)
        await network.teardown()


async def test_a_reconcile_loop_never_removes_objects_of_creates_and_deletes_in_flight(
    network_runtime: RuncRuntime, rootfs: Path, prefix: str
) -> None:
    rt = network_runtime
    reports: list[ReconcileReport] = []
    stop = asyncio.Event()
    workers, cycles = 4, 3
    host_ports = random.sample(range(20000, 40000), workers * cycles)

    async def reconcile_loop() -> None:
        while not stop.is_set():
            reports.append(await rt.reconcile())
            await asyncio.sleep(0)  # no pause beyond yielding once

    async def worker(index: int) -> list[str]:
        """Cycles of: a sandbox with a published port, two containers created and started (each
        must come up running with its files), one deleted alone, then the whole sandbox."""
        seen = []
        for cycle in range(cycles):
            sandbox_id = f"w{index}s{cycle}"
            port = PortMapping(8080, host_port=host_ports[index * cycles + cycle])
            await rt.create_sandbox(SandboxSpec(id=sandbox_id, hostname=sandbox_id, ports=[port]))
            for n in range(2):
                container_id = f"{sandbox_id}c{n}"
                await rt.create(spec(container_id, sandbox_id, rootfs, ["sleep", "1000"]))
                state = await rt.start(container_id)
                assert state.status is ContainerStatus.RUNNING, state
                seen.append(container_id)
            assert (await rt.state(f"{sandbox_id}c0")).status is ContainerStatus.RUNNING
            await rt.delete(f"{sandbox_id}c0")
            assert (await rt.state(f"{sandbox_id}c1")).status is ContainerStatus.RUNNING
            await rt.delete_sandbox(sandbox_id)
        return seen

    loop = asyncio.create_task(reconcile_loop())
    try:
        started = await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(workers))), 300)
    finally:
        stop.set()
        await loop
    assert sum(len(s) for s in started) == workers * cycles * 2
    assert len(reports) >= 5, "the loop hardly ran while the operations did"
    assert [r for r in reports if not clean(r)] == []
    assert await rt.sandboxes() == []
    assert leftovers(prefix, rt.layout.state_dir) == []


# -- exits recorded by the loop ------------------------------------------------------------------------


async def test_an_exit_during_the_loop_is_recorded(tmp_path: Path, rootfs: Path, prefix: str) -> None:
    rt = RuncRuntime(tmp_path / "state", network=LoopbackNetwork(tmp_path / "net", prefix), prefix=prefix)
    reports: list[ReconcileReport] = []
    stop = asyncio.Event()

    async def reconcile_loop() -> None:
        while not stop.is_set():
            reports.append(await rt.reconcile())
            await asyncio.sleep(0.1)

    try:
        await rt.create_sandbox(SandboxSpec(id="box", hostname="box"))
        await rt.create(spec("brief", "box", rootfs, ["sh", "-c", "sleep 1; exit 4"]))
        await rt.create(spec("lasting", "box", rootfs, ["sleep", "1000"]))
        await rt.start("brief")
        await rt.start("lasting")
        loop = asyncio.create_task(reconcile_loop())
        try:
            # Nobody asks for the state: only the loop can notice the exit.
            await eventually(
                lambda: any("brief" in r.exited for r in reports), what="the exit to be recorded"
            )
        finally:
            stop.set()
            await loop
        assert [r.exited for r in reports if r.exited] == [["brief"]]  # recorded once
        assert all("lasting" in r.adopted for r in reports)
        assert all(clean(r) for r in reports)
        final = (rt.layout.bundle("brief") / "final.json").read_text()
        assert '"exit_code": 4' in final
        state = await rt.state("brief")
        assert (state.status, state.exit_code) == (ContainerStatus.STOPPED, 4)
        assert (await rt.state("lasting")).status is ContainerStatus.RUNNING
    finally:
        await delete_everything(rt)
    assert leftovers(prefix, rt.layout.state_dir) == []
