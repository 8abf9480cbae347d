"""SandboxNetwork against the real kernel: netns, CNI bridge + host-local, moorage's nft table.

Every name (netns prefix, nft table, bridge) carries this process's pid and the subnet is a /24
that no existing route covers. Only loopback and the addresses of our own namespaces are
contacted. Fixtures remove everything, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage.instances.runtime.base import PortMapping, RuntimeFailure, SandboxNotFound
from moorage.instances.runtime.runc.network import NETNS_DIR, SandboxNetwork

CNI_PATH = Path("/usr/lib/cni")
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 -- PortMapping.host_ip for "all host addresses"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_PATH / plugin).is_file():
            return f"CNI plugin {plugin} is not installed in {CNI_PATH}"
    return None


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]

NAME = f"mrgt{os.getpid()}"  # prefix, nft table and bridge (<= 15 characters)


def _pick_subnet() -> str | None:
    """A /24 under 10.217.0.0/16 that overlaps no route of the host."""
    routes = json.loads(subprocess.run(["ip", "-j", "route"], capture_output=True, check=True).stdout)
    taken: list[ipaddress.IPv4Network] = []
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    start = os.getpid() % 250
    for offset in range(250):
        candidate = ipaddress.IPv4Network(f"10.217.{(start + offset) % 250}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    return None


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _force_cleanup() -> None:
    """Last resort, only for objects carrying this session's name."""
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            if entry.name.startswith(f"{NAME}-"):
                _sh("ip", "netns", "delete", entry.name)
    _sh("nft", "delete", "table", "ip", NAME)
    if Path("/sys/class/net", NAME).exists():
        _sh("ip", "link", "delete", NAME)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "net"


@pytest.fixture(scope="session")
def subnet() -> str:
    picked = _pick_subnet()
    if picked is None:
        pytest.skip("no free /24 under 10.217.0.0/16")
    return picked


@pytest.fixture
def net(state_dir: Path, subnet: str) -> Iterator[SandboxNetwork]:
    network = SandboxNetwork(
        state_dir, bridge=NAME, subnet=subnet, cni_path=CNI_PATH, prefix=NAME, nft_table=NAME
    )
    try:
        yield network
    finally:
        try:
            asyncio.run(network.cleanup_orphans(set()))
            assert asyncio.run(network.teardown())
        finally:
            _force_cleanup()
        assert not [e.name for e in NETNS_DIR.glob(f"{NAME}-*")]
        assert not Path("/sys/class/net", NAME).exists()
        assert _sh("nft", "list", "table", "ip", NAME).returncode != 0


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started in the namespaces; killed (by pid) at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _netns_name(netns_path: str) -> str:
    return Path(netns_path).name


def _serve(
    procs: list[subprocess.Popen[bytes]], netns: str, directory: Path, port: int, bind: str = EVERY_ADDRESS
) -> None:
    proc = subprocess.Popen(
        [
            *("ip", "netns", "exec", _netns_name(netns)),
            *(sys.executable, "-m", "http.server", str(port), "--bind", bind, "--directory", str(directory)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(proc)


def _get(host: str, port: int, path: str = "/index.html", timeout: float = 5.0) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)  # no proxies, unlike urllib
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def _wait_reachable(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _site(tmp_path: Path, text: str) -> Path:
    site = tmp_path / f"site-{text}"
    site.mkdir()
    (site / "index.html").write_text(text)
    return site


def _map_elements(table: str) -> list[Any]:
    listing = json.loads(_sh("nft", "-j", "list", "table", "ip", table).stdout)
    elements: list[Any] = []
    for item in listing["nftables"]:
        if "map" in item:
            elements.extend(item["map"].get("elem", []))
    return elements


async def test_two_sandboxes_get_distinct_ips_and_published_ports_work(
    net: SandboxNetwork, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    host_port = _free_port()
    netns_a, ip_a = await net.create("a", [PortMapping(8080, host_port=host_port)])
    netns_b, ip_b = await net.create("b", [])
    assert ip_a != ip_b
    assert ipaddress.IPv4Address(ip_a) in net.subnet
    assert ipaddress.IPv4Address(ip_b) in net.subnet
    assert netns_a == f"/run/netns/{NAME}-a"
    assert Path(netns_a).exists()
    assert Path(netns_b).exists()
    assert await net.sandboxes() == ["a", "b"]
    info = await net.info("a")
    assert info == (netns_a, ip_a, [PortMapping(8080, "TCP", host_port, "127.0.0.1")])

    _serve(procs, netns_a, _site(tmp_path, "hello-a"), 8080)
    _wait_reachable(ip_a, 8080)
    assert _get(ip_a, 8080) == "hello-a"  # the group's address, directly
    assert _get("127.0.0.1", host_port) == "hello-a"  # the host port, through moorage's DNAT
    # The mapping is bound to 127.0.0.1: another loopback address is not forwarded.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", host_port), timeout=2).close()


async def test_wildcard_host_port_is_published_on_every_host_address(
    net: SandboxNetwork, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    host_port = _free_port()
    netns, ip = await net.create("w", [PortMapping(80, host_port=host_port, host_ip=EVERY_ADDRESS)])
    _serve(procs, netns, _site(tmp_path, "hello-w"), 80)
    _wait_reachable(ip, 80)
    assert _get("127.0.0.1", host_port) == "hello-w"
    assert _get("127.0.0.2", host_port) == "hello-w"


async def test_processes_in_one_sandbox_reach_each_other_on_localhost(
    net: SandboxNetwork, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    netns, ip = await net.create("pod", [])
    _serve(procs, netns, _site(tmp_path, "over-lo"), 9090, bind="127.0.0.1")
    client = (
        "import http.client, time\n"
        "for _ in range(150):\n"
        "    try:\n"
        "        c = http.client.HTTPConnection('127.0.0.1', 9090, timeout=2)\n"
        "        c.request('GET', '/index.html')\n"
        "        print(c.getresponse().read().decode()); break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
    )
    result = subprocess.run(
        ["ip", "netns", "exec", _netns_name(netns), sys.executable, "-c", client],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "over-lo"
    # Bound to the sandbox's loopback only: not reachable on its bridge address.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, 9090), timeout=2).close()


async def test_a_host_port_published_by_another_sandbox_is_refused(net: SandboxNetwork) -> None:
    host_port = _free_port()
    await net.create("first", [PortMapping(80, host_port=host_port)])
    with pytest.raises(RuntimeFailure, match=rf"TCP {host_port} .*already published by sandbox first"):
        await net.create("second", [PortMapping(8080, host_port=host_port)])
    with pytest.raises(RuntimeFailure, match="already published by sandbox first"):
        await net.create("third", [PortMapping(8080, host_port=host_port, host_ip=EVERY_ADDRESS)])
    with pytest.raises(RuntimeFailure, match="requested twice"):
        await net.create("fourth", [PortMapping(80), PortMapping(80)])
    # The refused sandboxes left nothing behind.
    assert await net.sandboxes() == ["first"]
    assert not Path(f"/run/netns/{NAME}-second").exists()
    # Another protocol, or another address, on the same port is fine.
    await net.create("udp", [PortMapping(80, "UDP", host_port=host_port)])
    await net.create("other-ip", [PortMapping(80, host_port=host_port, host_ip="127.0.0.3")])
    assert len(_map_elements(NAME)) == 3


async def test_delete_leaves_nothing_behind(net: SandboxNetwork, state_dir: Path) -> None:
    host_port = _free_port()
    netns, ip = await net.create("gone", [PortMapping(80, host_port=host_port), PortMapping(53, "UDP")])
    hosts, resolv = await net.hosts_files("gone", "gone-host")
    reservation = state_dir / "ipam" / NAME / ip
    record = state_dir / "cni" / "gone.json"
    assert reservation.exists()
    assert record.exists()
    assert len(_map_elements(NAME)) == 2

    await net.delete("gone")
    assert not Path(netns).exists()
    assert _map_elements(NAME) == []
    assert not record.exists()
    assert not reservation.exists()
    assert not hosts.exists()
    assert not resolv.exists()
    assert await net.sandboxes() == []
    await net.delete("gone")  # idempotent
    await net.delete("never-existed")

    # The same id can be created again and gets an address again.
    netns, ip = await net.create("gone", [PortMapping(80, host_port=host_port)])
    assert ipaddress.IPv4Address(ip) in net.subnet
    assert await net.teardown() is False  # a sandbox remains: nothing touched
    assert Path("/sys/class/net", NAME).exists()
    await net.delete("gone")

    assert await net.teardown() is True
    assert not Path("/sys/class/net", NAME).exists()
    assert _sh("nft", "list", "table", "ip", NAME).returncode != 0
    assert not (state_dir / "ipam").exists()
    assert await net.teardown() is True  # idempotent


async def test_delete_of_a_half_gone_sandbox(net: SandboxNetwork, state_dir: Path) -> None:
    netns, ip = await net.create("half", [PortMapping(80, host_port=_free_port())])
    subprocess.run(["ip", "netns", "delete", _netns_name(netns)], check=True)  # namespace vanished
    await net.delete("half")
    assert not (state_dir / "ipam" / NAME / ip).exists()
    assert _map_elements(NAME) == []
    assert await net.sandboxes() == []


async def test_cleanup_orphans(net: SandboxNetwork, state_dir: Path) -> None:
    await net.create("keep", [PortMapping(80, host_port=_free_port())])
    netns_orphan, ip_orphan = await net.create("orphan", [PortMapping(80, host_port=_free_port())])
    subprocess.run(["ip", "netns", "add", f"{NAME}-bare"], check=True)  # a netns without a record
    stale_port = _free_port()
    subprocess.run(  # an element pointing at an address no sandbox holds
        [
            "nft",
            "add",
            "element",
            "ip",
            NAME,
            "hostports",
            f"{{ 127.0.0.1 . tcp . {stale_port} : 10.0.0.9 . 80 }}",
        ],
        check=True,
    )
    assert await net.sandboxes() == ["bare", "keep", "orphan"]

    removed = await net.cleanup_orphans({"keep"})
    assert removed == ["bare", "orphan"]
    assert await net.sandboxes() == ["keep"]
    assert not Path(netns_orphan).exists()
    assert not Path(f"/run/netns/{NAME}-bare").exists()
    assert not (state_dir / "ipam" / NAME / ip_orphan).exists()
    assert len(_map_elements(NAME)) == 1  # only keep's port
    assert Path(f"/run/netns/{NAME}-keep").exists()
    assert await net.cleanup_orphans({"keep"}) == []


async def test_failed_create_rolls_back(net: SandboxNetwork, state_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "cni").mkdir()
    for plugin in ("loopback", "host-local"):  # no bridge plugin: ADD fails midway
        (tmp_path / "cni" / plugin).symlink_to(CNI_PATH / plugin)
    broken = SandboxNetwork(
        state_dir, bridge=NAME, subnet=str(net.subnet), cni_path=tmp_path / "cni", prefix=NAME, nft_table=NAME
    )
    with pytest.raises(RuntimeFailure, match="CNI plugin 'bridge' not found"):
        await broken.create("broken", [PortMapping(80, host_port=_free_port())])
    assert not Path(f"/run/netns/{NAME}-broken").exists()
    assert _map_elements(NAME) == []
    # The record stays for the reconciler (its DEL could not run); a working network removes it.
    assert await net.cleanup_orphans(set()) == ["broken"]
    assert await net.sandboxes() == []


async def test_hosts_and_resolv_conf(net: SandboxNetwork) -> None:
    _, ip = await net.create("files", [])
    hosts, resolv = await net.hosts_files(
        "files",
        "web.example.internal",
        extra_hosts=[("10.1.2.3", "db")],
        dns_servers=["10.0.0.53"],
        dns_search=["example.internal"],
    )
    hosts_text = hosts.read_text()
    assert "127.0.0.1\tlocalhost" in hosts_text
    assert f"{ip}\tweb.example.internal web" in hosts_text
    assert "10.1.2.3\tdb" in hosts_text
    assert resolv.read_text().splitlines()[1:] == ["nameserver 10.0.0.53", "search example.internal"]
    assert oct(hosts.stat().st_mode & 0o777) == "0o644"

    _, resolv = await net.hosts_files("files", "web")
    for line in resolv.read_text().splitlines():
        if line.startswith("nameserver"):
            address = ipaddress.ip_address(line.split()[1])
            assert not address.is_loopback
            assert address.version == 4

    with pytest.raises(SandboxNotFound):
        await net.hosts_files("nope", "x")


async def test_concurrent_creates_and_deletes(net: SandboxNetwork) -> None:
    ids = [f"c{i}" for i in range(6)]
    ports = [_free_port() for _ in ids]
    results = await asyncio.gather(
        *(net.create(sid, [PortMapping(80, host_port=port)]) for sid, port in zip(ids, ports, strict=True))
    )
    assert len({ip for _, ip in results}) == len(ids)
    assert len(_map_elements(NAME)) == len(ids)
    await asyncio.gather(*(net.delete(sid) for sid in ids))
    assert await net.sandboxes() == []
    assert _map_elements(NAME) == []
