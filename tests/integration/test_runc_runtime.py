"""The runc backend with real containers: group networking, volumes, OOM, surviving a killed
control plane, reconciliation of debris, and leaving nothing behind."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import os
import random
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from moorage.instances.runtime.base import (
    ContainerSpec,
    ContainerStatus,
    PortMapping,
    Resources,
    RuntimeFailure,
    SandboxSpec,
    Volume,
    VolumeMount,
)
from moorage.instances.runtime.runc import RuncRuntime
from moorage.instances.snapshots import Snapshotter
from tests.images import sha256, tar_layer
from tests.runtime_support import (
    BUSYBOX,
    GROUP,
    PASSWD,
    LoopbackNetwork,
    build_busybox_rootfs,
    leftovers,
    runc_unavailable,
    unique_prefix,
)

UNAVAILABLE = runc_unavailable()
pytestmark = [pytest.mark.root, pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")]

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]
FETCH_LOOP = "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1"


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def runtime(tmp_path: Path, prefix: str) -> AsyncIterator[RuncRuntime]:
    rt = RuncRuntime(tmp_path / "state", network=LoopbackNetwork(tmp_path / "net", prefix), prefix=prefix)
    try:
        yield rt
    finally:
        await _delete_everything(rt)


async def _delete_everything(rt: RuncRuntime) -> None:
    for sandbox in await rt.sandboxes():
        await rt.delete_sandbox(sandbox.id)
    for container in await rt.containers():
        await rt.delete(container.id)
    await rt.reconcile()


def spec(
    container_id: str, sandbox_id: str, rootfs: Path, args: list[str], **kwargs: object
) -> ContainerSpec:
    return ContainerSpec(id=container_id, sandbox_id=sandbox_id, rootfs_layers=[rootfs], args=args, **kwargs)  # type: ignore[arg-type]


async def test_group_containers_talk_over_localhost(runtime: RuncRuntime, rootfs: Path) -> None:
    await runtime.create_sandbox(SandboxSpec(id="web", hostname="web"))
    await runtime.create(
        spec("server", "web", rootfs, ["httpd", "-f", "-p", "8080", "-h", "/www"], stop_grace_s=0.5)
    )
    await runtime.start("server")
    await runtime.create(spec("client", "web", rootfs, ["sh", "-c", FETCH_LOOP]))
    await runtime.start("client")
    final = await runtime.wait("client", 30)
    assert final.exit_code == 0, await runtime.logs("client")
    assert [line.text for line in await runtime.logs("client")] == ["hello from moorage"]
    assert (await runtime.exec("server", ["hostname"])).stdout == "web\n"
    assert "web" in (await runtime.exec("server", ["cat", "/etc/hosts"])).stdout
    stopped = await runtime.stop("server")  # httpd as PID 1 ignores SIGTERM: killed after the grace
    assert stopped.exit_code == 137


async def test_oom_of_a_shell_growing_a_variable(runtime: RuncRuntime, rootfs: Path) -> None:
    await runtime.create_sandbox(SandboxSpec(id="oom", hostname="oom"))
    grow = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    await runtime.create(
        spec("hog", "oom", rootfs, ["sh", "-c", grow], resources=Resources(memory_bytes=32 * MiB))
    )
    await runtime.start("hog")
    final = await runtime.wait("hog", 60)
    assert final.status is ContainerStatus.STOPPED
    assert final.oom_killed
    assert final.exit_code != 0
    assert "survived" not in [line.text for line in await runtime.logs("hog")]


async def test_cpu_and_pids_limits_reach_the_cgroup(runtime: RuncRuntime, rootfs: Path, prefix: str) -> None:
    await runtime.create_sandbox(SandboxSpec(id="limits", hostname="limits"))
    await runtime.create(
        spec(
            "box",
            "limits",
            rootfs,
            ["sleep", "1000"],
            resources=Resources(cpu=0.5, memory_bytes=64 * MiB, pids=32),
        )
    )
    cgroup = Path("/sys/fs/cgroup")
    path = runtime.cgroups_path("box").strip("/")
    if (cgroup / "cpu" / path).is_dir():  # cgroup v1 (hybrid) hosts
        assert (cgroup / "cpu" / path / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cgroup / "memory" / path / "memory.limit_in_bytes").read_text().strip() == str(64 * MiB)
        assert (cgroup / "pids" / path / "pids.max").read_text().strip() == "32"
    else:
        assert (cgroup / path / "cpu.max").read_text().split()[0] == "50000"
    await runtime.start("box")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1048576 requested, clamped to the host's
    expected = "1048576" if hard == resource.RLIM_INFINITY else str(min(hard, 1048576))
    assert (await runtime.exec("box", ["sh", "-c", "ulimit -n"])).stdout == f"{expected}\n"


async def test_volumes_empty_dir_is_shared_and_secrets_are_read_only(
    runtime: RuncRuntime, rootfs: Path
) -> None:
    volumes = [
        Volume("scratch"),
        Volume("creds", kind="secret", files={"token": b"s3cr3t", "user": b"admin"}),
    ]
    await runtime.create_sandbox(SandboxSpec(id="vols", hostname="vols", volumes=volumes))
    mounts = [VolumeMount("scratch", "/scratch"), VolumeMount("creds", "/etc/creds")]
    for name in ("writer", "reader"):
        await runtime.create(spec(name, "vols", rootfs, ["sleep", "1000"], volume_mounts=mounts, user="app"))
        await runtime.start(name)
    assert (await runtime.exec("writer", ["sh", "-c", "echo shared > /scratch/note"])).exit_code == 0
    assert (await runtime.exec("reader", ["cat", "/scratch/note"])).stdout == "shared\n"
    assert (await runtime.exec("reader", ["cat", "/etc/creds/token"])).stdout == "s3cr3t"
    assert (await runtime.exec("reader", ["sh", "-c", "echo x > /etc/creds/token"])).exit_code != 0
    secret_dir = runtime.layout.sandbox("vols") / "volumes" / "creds"
    assert any(line.split(" ")[4] == str(secret_dir) and " - tmpfs " in line for line in _mountinfo())


async def test_the_real_network_gives_an_address_and_host_ports(
    tmp_path: Path, rootfs: Path, prefix: str
) -> None:
    from moorage.instances.runtime.runc.network import SandboxNetwork  # noqa: PLC0415

    octets = random.randint(100, 250), random.randint(0, 255)
    network = SandboxNetwork(
        tmp_path / "net",
        bridge=f"{prefix[:10]}br",
        subnet=f"10.{octets[0]}.{octets[1]}.0/24",
        prefix=prefix,
        nft_table=f"{prefix}_t",
    )
    host_port = random.randint(20000, 40000)
    rt = RuncRuntime(tmp_path / "state", network=network, prefix=prefix)
    try:
        sandbox = await rt.create_sandbox(
            SandboxSpec(id="net", hostname="net", ports=[PortMapping(8080, host_port=host_port)])
        )
        assert sandbox.ip is not None
        assert ipaddress.ip_address(sandbox.ip) in ipaddress.ip_network(network.subnet)
        await rt.create(spec("server", "net", rootfs, ["httpd", "-f", "-p", "8080", "-h", "/www"]))
        await rt.start("server")
        for url in (f"http://{sandbox.ip}:8080/", f"http://127.0.0.1:{host_port}/"):
            assert await asyncio.to_thread(_get, url) == "hello from moorage\n"
    finally:
        await _delete_everything(rt)
        await network.teardown()
    assert leftovers(prefix, tmp_path / "state") == []


def _get(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own test URL
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _mountinfo() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


async def test_containers_survive_a_killed_control_plane(tmp_path: Path, rootfs: Path, prefix: str) -> None:
    state_dir, net_dir = tmp_path / "state", tmp_path / "net"
    plane = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.control_plane",
            str(state_dir),
            str(net_dir),
            prefix,
            str(rootfs),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    runtime = RuncRuntime(state_dir, network=LoopbackNetwork(net_dir, prefix), prefix=prefix)
    try:
        assert plane.stdout is not None
        output = []
        for line in plane.stdout:
            output.append(line)
            if line.strip() == "ready":
                break
        else:
            pytest.fail("the control plane did not get ready:\n" + "".join(output))
        os.kill(plane.pid, signal.SIGKILL)
        plane.wait()
        await asyncio.sleep(1.5)  # "short" exits (5) while nobody watches

        report = await runtime.reconcile()
        assert report.adopted == ["long"]
        assert report.exited == ["short"]
        assert report.removed == []
        assert report.errors == []
        short = await runtime.state("short")
        assert (short.status, short.exit_code) == (ContainerStatus.STOPPED, 5)
        long = await runtime.state("long")
        assert long.status is ContainerStatus.RUNNING
        assert (await runtime.exec("long", ["echo", "still here"])).stdout == "still here\n"

        await runtime.kill("long", signal.SIGTERM)
        final = await runtime.wait("long", 10)
        assert (final.status, final.exit_code) == (ContainerStatus.STOPPED, 7)
    finally:
        if plane.poll() is None:
            plane.kill()
            plane.wait()
        if plane.stdout is not None:
            plane.stdout.close()
        await _delete_everything(runtime)
    assert leftovers(prefix, state_dir) == []


async def test_reconcile_removes_debris_of_a_crashed_create(
    runtime: RuncRuntime, rootfs: Path, prefix: str
) -> None:
    await runtime.create_sandbox(SandboxSpec(id="debris", hostname="debris"))
    await runtime.create(spec("kept", "debris", rootfs, ["sleep", "1000"]))
    await runtime.start("kept")
    await runtime.create(spec("ghost", "debris", rootfs, ["sleep", "1000"]))
    await runtime.start("ghost")
    # As if the control plane had died inside create: no record, everything else in place.
    (runtime.layout.bundle("ghost") / "meta.json").unlink()
    # A sandbox whose create never finished, and a network namespace nobody owns.
    (runtime.layout.sandbox("halfway")).mkdir()
    await runtime.network.create("stray", [])

    report = await runtime.reconcile()
    assert sorted(report.removed) == ["bundle:ghost", "network:stray", "sandbox:halfway"]
    assert report.adopted == ["kept"]
    assert report.errors == []
    assert [c.id for c in await runtime.containers()] == ["kept"]
    assert not any("ghost" in item for item in leftovers(prefix, runtime.layout.state_dir))
    assert (await runtime.state("kept")).status is ContainerStatus.RUNNING
    assert (await runtime.reconcile()).removed == []


async def test_deleting_a_group_leaves_nothing_behind(
    runtime: RuncRuntime, rootfs: Path, prefix: str
) -> None:
    volumes = [Volume("scratch"), Volume("creds", kind="secret", files={"token": b"t"})]
    await runtime.create_sandbox(SandboxSpec(id="group", hostname="group", volumes=volumes))
    mounts = [VolumeMount("scratch", "/scratch"), VolumeMount("creds", "/creds")]
    await runtime.create(spec("running", "group", rootfs, ["sleep", "1000"], volume_mounts=mounts))
    await runtime.start("running")
    await runtime.create(spec("exited", "group", rootfs, ["true"], volume_mounts=mounts))
    await runtime.start("exited")
    await runtime.create(spec("created", "group", rootfs, ["true"]))
    with pytest.raises(RuntimeFailure):  # a failed create cleans up after itself
        await runtime.create(spec("failed", "group", rootfs, ["no-such-binary"], volume_mounts=mounts))
    await runtime.wait("exited", 10)
    assert leftovers(prefix, runtime.layout.state_dir)  # the check sees live containers

    began = time.monotonic()
    await runtime.delete_sandbox("group")
    elapsed = time.monotonic() - began
    assert leftovers(prefix, runtime.layout.state_dir) == []
    assert await runtime.containers() == []
    assert await runtime.sandboxes() == []
    assert list(runtime.layout.containers.iterdir()) == []
    assert list(runtime.layout.exits.iterdir()) == []
    assert list(runtime.layout.sockets.iterdir()) == []
    assert elapsed < 10


async def test_a_rootfs_of_sixty_layers(runtime: RuncRuntime, tmp_path: Path, prefix: str) -> None:
    """Sixty snapshots make an overlay option string longer than a page: the rootfs goes through
    the ``lowerdir+`` mount (the same code as ``Snapshotter.mount_rootfs``)."""
    applets = {f"bin/{name}": "busybox" for name in ("sh", "cat", "ls", "wc", "sleep")}
    base = tar_layer(
        {"bin/busybox": BUSYBOX.read_bytes(), "etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode()},
        modes={"bin/busybox": 0o755},
        symlinks=applets,
    )
    tars = [base] + [tar_layer({f"layers/{i:02d}": b"%d" % i, "top": b"%d" % i}) for i in range(1, 60)]
    snapshotter = Snapshotter(tmp_path / "images")

    def opener(data: bytes) -> Callable[[], BinaryIO]:
        return lambda: io.BytesIO(data)

    lowers = await snapshotter.prepare([(opener(tar), sha256(tar)) for tar in tars])
    assert len(lowers) == 60
    assert len(":".join(str(path) for path in lowers)) > os.sysconf("SC_PAGE_SIZE")

    await runtime.create_sandbox(SandboxSpec(id="tall", hostname="tall"))
    script = "cat /top; echo; ls /layers | wc -l; cat /layers/01"
    await runtime.create(
        ContainerSpec(id="tall", sandbox_id="tall", rootfs_layers=lowers, args=["sh", "-c", script])
    )
    rootfs = runtime.layout.bundle("tall") / "rootfs"
    assert any(line.split(" ")[4] == str(rootfs) and " - overlay " in line for line in _mountinfo())
    await runtime.start("tall")
    final = await runtime.wait("tall", 30)
    lines = [line.text.strip() for line in await runtime.logs("tall")]
    assert final.exit_code == 0, lines
    assert lines == ["59", "59", "1"]
    await runtime.delete_sandbox("tall")
    assert leftovers(prefix, runtime.layout.state_dir) == []
    assert (lowers[0] / "top").read_bytes() == b"59"  # the snapshots are untouched
