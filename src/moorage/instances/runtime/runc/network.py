"""Sandbox networking for the runc backend: one network namespace per container group.

A sandbox is a named network namespace ``/run/netns/<prefix>-<sandbox_id>`` (``ip netns add``
bind-mounts it, so no pause process is needed). Its interfaces come from the CNI plugins, called
directly as the CNI spec describes: ``loopback`` (``lo`` up) and ``bridge`` with ``host-local``
IPAM (a veth into the bridge, an address on the subnet, a default route via the bridge). The ADD
results are cached on disk so that DEL works after a restart.

Host ports do not use the ``portmap`` plugin (it leaves chains behind and costs ~100 ms per DEL);
they are elements of two maps in moorage's own nftables table::

    table ip moorage {
        map hostports     { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
        map hostports_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
        chain prerouting  { type nat hook prerouting priority dstnat; policy accept;
            fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @hostports
            fib daddr type local dnat ip to meta l4proto . th dport map @hostports_any }
        chain output      { type nat hook output priority -100; policy accept;  (the same two rules) }
        chain postrouting { type nat hook postrouting priority srcnat; policy accept;
            ip saddr 127.0.0.0/8 ip daddr <subnet> masquerade                    # 127.0.0.1:port
            ip saddr <subnet> ip daddr <subnet> ct status dnat masquerade       # hairpin
            ip saddr <subnet> ip daddr != <subnet> masquerade }                 # outbound (ipMasq)
    }

``hostports`` holds mappings bound to one host address (``127.0.0.1`` by default),
``hostports_any`` those published on every host address (``host_ip`` ``0.0.0.0``). The ``output``
chain makes ``127.0.0.1:<port>`` work from the host itself; that needs ``route_localnet=1`` on the
bridge and the loopback masquerade. Outbound masquerading lives in the same table instead of the
bridge plugin's ``ipMasq`` (which would add per-container iptables chains that leak whenever DEL
runs after the namespace is gone). Deleting the table removes everything at once.

Files under ``state_dir``::

    cni/<sandbox_id>.json         the record: netns, IP, cached CNI ADD results, published ports
    ipam/<prefix>/                host-local's reservations
    files/<sandbox_id>/hosts      generated /etc/hosts and /etc/resolv.conf (bind-mount sources)
    files/<sandbox_id>/resolv.conf
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.core.log import get_logger
from moorage.instances.runtime.base import PortMapping, RuntimeFailure, SandboxNotFound

log = get_logger("runtime.network")

NETNS_DIR = Path("/run/netns")
CNI_VERSION = "1.0.0"
IFNAME = "eth0"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ANY = "0.0.0.0"  # noqa: S104 -- a PortMapping.host_ip meaning "every host address"

_SANDBOX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
_NFT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
_IFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")

# One lock per (event loop, network): CNI calls and map updates of one network never interleave.
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _network_lock(key: str) -> asyncio.Lock:
    per_loop = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(key)
    if lock is None:
        lock = per_loop[key] = asyncio.Lock()
    return lock


@dataclass(frozen=True)
class _Port:
    """One published port, normalised: ``host_ip`` is ``0.0.0.0`` for every host address."""

    host_ip: str
    protocol: str  # tcp | udp
    host_port: int
    container_port: int

    @property
    def wildcard(self) -> bool:
        return self.host_ip == _ANY

    def key(self) -> str:
        """The nft map key (in the ``hostports`` or ``hostports_any`` map)."""
        if self.wildcard:
            return f"{self.protocol} . {self.host_port}"
        return f"{self.host_ip} . {self.protocol} . {self.host_port}"

    def overlaps(self, other: _Port) -> bool:
        if self.protocol != other.protocol or self.host_port != other.host_port:
            return False
        return self.wildcard or other.wildcard or self.host_ip == other.host_ip

    def describe(self) -> str:
        where = "all host addresses" if self.wildcard else self.host_ip
        return f"{self.protocol.upper()} {self.host_port} on {where}"


@dataclass(frozen=True)
class _Element:
    """An element found in one of the host-port maps."""

    port: _Port
    target_ip: str


async def _run(
    argv: Sequence[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise RuntimeFailure(f"cannot run {argv[0]}: {exc}") from exc
    out, err = await proc.communicate(stdin)
    rc = proc.returncode if proc.returncode is not None else -1
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


async def _check(argv: Sequence[str], *, stdin: bytes | None = None, what: str | None = None) -> str:
    rc, out, err = await _run(argv, stdin=stdin)
    if rc != 0:
        detail = (err.strip() or out.strip() or f"exit status {rc}").replace("\n", "; ")
        raise RuntimeFailure(f"{what or ' '.join(argv)} failed: {detail}")
    return out


def _normalise_ports(ports: Sequence[PortMapping]) -> list[_Port]:
    result: list[_Port] = []
    for mapping in ports:
        protocol = mapping.protocol.lower()
        if protocol not in ("tcp", "udp"):
            raise RuntimeFailure(f"unsupported port protocol {mapping.protocol!r} (TCP or UDP)")
        host_port = mapping.container_port if mapping.host_port is None else mapping.host_port
        for value in (host_port, mapping.container_port):
            if not 1 <= value <= 65535:
                raise RuntimeFailure(f"port {value} is out of range 1-65535")
        raw_ip = mapping.host_ip.strip() or _ANY
        try:
            host_ip = ipaddress.IPv4Address(raw_ip)
        except ValueError as exc:
            raise RuntimeFailure(f"host address {mapping.host_ip!r} is not an IPv4 address") from exc
        port = _Port(str(host_ip), protocol, host_port, mapping.container_port)
        for earlier in result:
            if earlier.overlaps(port):
                raise RuntimeFailure(f"host port {port.describe()} is requested twice")
        result.append(port)
    return result


def _port_to_json(port: _Port) -> dict[str, Any]:
    return {
        "host_ip": port.host_ip,
        "protocol": port.protocol,
        "host_port": port.host_port,
        "container_port": port.container_port,
    }


def _port_from_json(data: dict[str, Any]) -> _Port:
    return _Port(
        str(data["host_ip"]), str(data["protocol"]), int(data["host_port"]), int(data["container_port"])
    )


_PROTO_NUMBERS = {"6": "tcp", "17": "udp"}


def _parse_elements(listing: str, wildcard: bool) -> list[_Element]:
    """Elements of one map from ``nft -j list map``."""
    elements: list[_Element] = []
    for item in json.loads(listing).get("nftables", []):
        nft_map = item.get("map") if isinstance(item, dict) else None
        if not nft_map:
            continue
        for elem in nft_map.get("elem", []):
            try:
                key, value = elem
                if isinstance(key, dict) and "elem" in key:  # an element carrying a comment/timeout
                    key = key["elem"]["val"]
                key_parts = key["concat"]
                target_ip = str(value["concat"][0])
                if wildcard:
                    host_ip, (proto, host_port) = _ANY, key_parts
                else:
                    host_ip, proto, host_port = key_parts
                container_port = int(value["concat"][1])
            except (KeyError, TypeError, ValueError):
                log.warning("unparsable nft map element", element=elem)
                continue
            protocol = _PROTO_NUMBERS.get(str(proto), str(proto))
            port = _Port(str(host_ip), protocol, int(host_port), container_port)
            elements.append(_Element(port, target_ip))
    return elements


class SandboxNetwork:
    """Network namespaces, CNI bridge networking and host ports for the runc backend's sandboxes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        bridge: str = "moorage0",
        subnet: str = "10.88.0.0/16",
        cni_path: Path = Path("/usr/lib/cni"),
        prefix: str = "moorage",
        nft_table: str = "moorage",
    ) -> None:
        if not _IFACE.match(bridge):
            raise ValueError(f"invalid bridge name {bridge!r} (at most 15 characters)")
        if not _PREFIX.match(prefix):
            raise ValueError(f"invalid prefix {prefix!r}")
        if not _NFT_NAME.match(nft_table):
            raise ValueError(f"invalid nftables table name {nft_table!r}")
        network = ipaddress.IPv4Network(subnet, strict=True)
        if network.num_addresses < 4:
            raise ValueError(f"subnet {subnet} is too small")
        self.state_dir = Path(state_dir)
        self.bridge = bridge
        self.subnet = network
        self.gateway = str(network.network_address + 1)
        self.cni_path = Path(cni_path)
        self.prefix = prefix
        self.nft_table = nft_table
        self._cache_dir = self.state_dir / "cni"
        self._ipam_dir = self.state_dir / "ipam"
        self._files_dir = self.state_dir / "files"

    # ------------------------------------------------------------------ public API

    async def create(self, sandbox_id: str, ports: Sequence[PortMapping]) -> tuple[str, str]:
        """Create the sandbox's namespace, address and host ports; return (netns path, IP).

        On failure the sandbox's parts are rolled back; only if even CNI DEL fails does its record
        stay behind, so that :meth:`delete` or :meth:`cleanup_orphans` can run DEL again.
        """
        self._check_id(sandbox_id)
        wanted = _normalise_ports(ports)
        async with self._lock():
            record = self._load_record(sandbox_id)
            if record and record.get("ip"):
                raise RuntimeFailure(f"sandbox {sandbox_id} already has a network")
            if (
                record is not None
                or self._netns_path(sandbox_id).exists()
                or self._reservations(self._container_id(sandbox_id))
            ):
                # Debris of an earlier incarnation that never completed (crash mid-create).
                await self._delete_locked(sandbox_id)
            await self._ensure_table()
            await self._conflicts(wanted)  # fail early, before any work
            try:
                return await self._create_locked(sandbox_id, wanted)
            except BaseException:
                try:
                    await self._delete_locked(sandbox_id)
                except Exception as exc:  # keep the original error; the reconciler retries cleanup
                    log.warning("rollback of sandbox network failed", sandbox=sandbox_id, error=str(exc))
                raise

    async def delete(self, sandbox_id: str) -> None:
        """Remove the sandbox's host ports, CNI attachment, namespace and files. Idempotent."""
        self._check_id(sandbox_id)
        async with self._lock():
            await self._delete_locked(sandbox_id)

    async def sandboxes(self) -> list[str]:
        """Ids of every sandbox with any trace here (namespace, record or IP reservation)."""
        return self._sandbox_ids()

    async def info(self, sandbox_id: str) -> tuple[str, str, list[PortMapping]] | None:
        """(netns path, IP, published ports) of a sandbox with a complete network, else None."""
        self._check_id(sandbox_id)
        record = self._load_record(sandbox_id)
        if not record or not record.get("ip"):
            return None
        ports = [_port_from_json(p) for p in record.get("ports", [])]
        return (
            str(record["netns"]),
            str(record["ip"]),
            [PortMapping(p.container_port, p.protocol.upper(), p.host_port, p.host_ip) for p in ports],
        )

    async def cleanup_orphans(self, keep: set[str]) -> list[str]:
        """Delete every sandbox not in ``keep`` and sweep host-port elements and generated files
        that belong to no kept sandbox. Returns the ids of the sandboxes removed."""
        removed: list[str] = []
        errors: list[str] = []
        async with self._lock():
            for sandbox_id in self._sandbox_ids():
                if sandbox_id in keep:
                    continue
                try:
                    await self._delete_locked(sandbox_id)
                    removed.append(sandbox_id)
                except RuntimeFailure as exc:
                    errors.append(f"{sandbox_id}: {exc.message}")
            owned = self._owned_ips()
            stale = [element for element in await self._elements() if element.target_ip not in owned]
            if stale:
                await self._delete_elements(element.port for element in stale)
            if self._files_dir.is_dir():
                for entry in self._files_dir.iterdir():
                    if not self._record_path(entry.name).exists():
                        shutil.rmtree(entry, ignore_errors=True)
        if removed or stale:
            log.info("removed orphaned sandbox networks", sandboxes=removed, stale_ports=len(stale))
        if errors:
            raise RuntimeFailure(
                f"could not remove orphaned sandbox networks ({'; '.join(errors)}); removed: {removed}"
            )
        return removed

    async def hosts_files(
        self,
        sandbox_id: str,
        hostname: str,
        extra_hosts: Sequence[tuple[str, str]] = (),
        dns_servers: Sequence[str] = (),
        dns_search: Sequence[str] = (),
    ) -> tuple[Path, Path]:
        """Write the sandbox's ``/etc/hosts`` and ``/etc/resolv.conf``; return their paths."""
        self._check_id(sandbox_id)
        record = self._load_record(sandbox_id)
        if record is None or not record.get("ip"):
            raise SandboxNotFound(f"sandbox {sandbox_id} has no network")
        directory = self._files_dir / sandbox_id
        hosts = directory / "hosts"
        resolv = directory / "resolv.conf"
        self._write_files(
            directory,
            {
                hosts: _hosts_text(sandbox_id, str(record["ip"]), hostname, extra_hosts),
                resolv: _resolv_text(dns_servers, dns_search),
            },
        )
        return hosts, resolv

    async def teardown(self) -> bool:
        """Remove the nftables table, the bridge and IPAM state if no sandbox remains.

        Returns whether it did (False: sandboxes still exist, nothing was touched)."""
        async with self._lock():
            if self._sandbox_ids():
                return False
            rc, _, err = await _run(["nft", "delete", "table", "ip", self.nft_table])
            if rc != 0 and "No such file or directory" not in err:
                raise RuntimeFailure(f"nft delete table ip {self.nft_table} failed: {err.strip()}")
            if self._bridge_exists():
                rc, _, err = await _run(["ip", "link", "delete", self.bridge])
                if rc != 0 and self._bridge_exists():
                    raise RuntimeFailure(f"ip link delete {self.bridge} failed: {err.strip()}")
            self._remove_state_dirs()
        return True

    # ------------------------------------------------------------------ create / delete

    async def _create_locked(self, sandbox_id: str, wanted: list[_Port]) -> tuple[str, str]:
        netns = str(self._netns_path(sandbox_id))
        container_id = self._container_id(sandbox_id)
        await _check(["ip", "netns", "add", self._netns_name(sandbox_id)])
        record: dict[str, Any] = {
            "sandbox_id": sandbox_id,
            "netns": netns,
            "container_id": container_id,
            "ifname": IFNAME,
            "network": self.prefix,
            "ip": None,
            "results": {},
            "ports": [],
        }
        self._save_record(sandbox_id, record)
        record["results"]["loopback"] = await self._cni(
            "ADD", self._loopback_conf(), container_id=container_id, netns=netns, ifname="lo"
        )
        self._save_record(sandbox_id, record)
        result: dict[str, Any] | None = None
        for plugin in self._chain():
            result = await self._cni(
                "ADD", plugin, container_id=container_id, netns=netns, ifname=IFNAME, prev_result=result
            )
            record["results"]["chain"] = result
            self._save_record(sandbox_id, record)
        ip = self._ip_from_result(result)
        record["ip"] = ip
        record["ports"] = [_port_to_json(port) for port in wanted]  # recorded before publishing
        self._save_record(sandbox_id, record)
        self._set_route_localnet()
        if wanted:
            stale = await self._conflicts(wanted)
            script = [f"delete element ip {self.nft_table} {m} {{ {', '.join(keys)} }}" for m, keys in stale]
            script.extend(
                f"create element ip {self.nft_table} {self._map_for(port)} "
                f"{{ {port.key()} : {ip} . {port.container_port} }}"
                for port in wanted
            )
            await _check(["nft", "-f", "-"], stdin="\n".join(script).encode(), what="publishing host ports")
        log.info("sandbox network created", sandbox=sandbox_id, ip=ip, ports=len(wanted))
        return netns, ip

    async def _delete_locked(self, sandbox_id: str) -> None:
        """Remove whatever exists of the sandbox; tolerate parts that are already gone."""
        record = self._load_record(sandbox_id)
        netns_path = self._netns_path(sandbox_id)
        container_id = self._container_id(sandbox_id)
        errors: list[str] = []

        # 1. host ports: every element pointing at the sandbox's address (its recorded ports and
        #    anything else that still does)
        ip = record.get("ip") if record else None
        try:
            doomed = {e.port for e in await self._elements() if e.target_ip == ip} if ip else set()
            if doomed:
                await self._delete_elements(doomed)
        except RuntimeFailure as exc:
            errors.append(exc.message)

        # 2. CNI DEL, the chain in reverse with the cached result, then loopback
        netns_exists = netns_path.exists()
        cni_ok = True
        if record is not None or netns_exists or self._reservations(container_id):
            netns = str(netns_path) if netns_exists else ""
            cached = record.get("results", {}).get("chain") if record else None
            for plugin in reversed(self._chain()):
                try:
                    await self._cni(
                        "DEL",
                        plugin,
                        container_id=container_id,
                        netns=netns,
                        ifname=IFNAME,
                        prev_result=cached,
                    )
                except RuntimeFailure as exc:
                    cni_ok = False
                    errors.append(exc.message)
            if netns_exists:
                try:
                    lo_conf = self._loopback_conf()
                    await self._cni("DEL", lo_conf, container_id=container_id, netns=netns, ifname="lo")
                except RuntimeFailure as exc:
                    errors.append(exc.message)  # the namespace goes away anyway; not worth a retry

        # 3. the namespace
        if netns_path.exists():
            rc, _, err = await _run(["ip", "netns", "delete", self._netns_name(sandbox_id)])
            if rc != 0 and netns_path.exists():
                errors.append(f"ip netns delete {self._netns_name(sandbox_id)} failed: {err.strip()}")

        # 4. files (the record only once CNI DEL succeeded, so that a retry can run it again)
        shutil.rmtree(self._files_dir / sandbox_id, ignore_errors=True)
        if cni_ok:
            self._record_path(sandbox_id).unlink(missing_ok=True)
        if errors:
            raise RuntimeFailure(f"deleting the network of sandbox {sandbox_id}: {'; '.join(errors)}")

    # ------------------------------------------------------------------ CNI

    def _loopback_conf(self) -> dict[str, Any]:
        return {"type": "loopback"}

    def _chain(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": True,
                "ipMasq": False,  # masquerading is a rule in moorage's own nft table
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(self.subnet), "gateway": self.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(self._ipam_dir),
                },
            }
        ]

    async def _cni(
        self,
        command: str,
        plugin: dict[str, Any],
        *,
        container_id: str,
        netns: str,
        ifname: str,
        prev_result: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        conf = dict(plugin)
        conf["name"] = self.prefix
        conf["cniVersion"] = CNI_VERSION
        if prev_result is not None:
            conf["prevResult"] = prev_result
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.cni_path),
            "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
        }
        plugin_type = str(plugin["type"])
        binary = self.cni_path / plugin_type
        if not binary.is_file():
            raise RuntimeFailure(f"CNI plugin {plugin_type!r} not found in {self.cni_path}")
        rc, out, err = await _run([str(binary)], stdin=json.dumps(conf).encode(), env=env)
        if rc != 0:
            message = out.strip() or err.strip() or f"exit status {rc}"
            with contextlib.suppress(ValueError, AttributeError):
                error = json.loads(out)
                message = str(error.get("msg") or message)
                if error.get("details"):
                    message += f" ({error['details']})"
            if err.strip() and err.strip() not in message:
                message += f"; stderr: {err.strip()}"
            raise RuntimeFailure(f"CNI {plugin_type} {command} failed: {message}")
        if command != "ADD":
            return None
        try:
            result = json.loads(out)
        except ValueError as exc:
            raise RuntimeFailure(f"CNI {plugin_type} ADD returned no JSON result: {out[:200]!r}") from exc
        if not isinstance(result, dict):
            raise RuntimeFailure(f"CNI {plugin_type} ADD returned an unexpected result: {out[:200]!r}")
        return result

    @staticmethod
    def _ip_from_result(result: dict[str, Any] | None) -> str:
        for entry in (result or {}).get("ips", []):
            address = str(entry.get("address", ""))
            with contextlib.suppress(ValueError):
                interface = ipaddress.ip_interface(address)
                if interface.version == 4:
                    return str(interface.ip)
        raise RuntimeFailure(f"CNI ADD result carries no IPv4 address: {json.dumps(result)[:300]}")

    def _reservations(self, container_id: str) -> list[Path]:
        """host-local's reservation files held by ``container_id`` (first line is its id)."""
        directory = self._ipam_dir / self.prefix
        found: list[Path] = []
        if not directory.is_dir():
            return found
        for entry in directory.iterdir():
            if entry.name.startswith(("last_reserved_ip", "lock")):
                continue
            with contextlib.suppress(OSError):
                if entry.read_text().splitlines()[:1] == [container_id]:
                    found.append(entry)
        return found

    def _reservation_holders(self) -> set[str]:
        directory = self._ipam_dir / self.prefix
        holders: set[str] = set()
        if not directory.is_dir():
            return holders
        for entry in directory.iterdir():
            if entry.name.startswith(("last_reserved_ip", "lock")):
                continue
            with contextlib.suppress(OSError, IndexError):
                holders.add(entry.read_text().splitlines()[0].strip())
        return holders

    # ------------------------------------------------------------------ nftables

    def _map_for(self, port: _Port) -> str:
        return "hostports_any" if port.wildcard else "hostports"

    async def _ensure_table(self) -> None:
        """Create the table or restore its rules (atomically; the maps and their elements stay)."""
        t = f"ip {self.nft_table}"
        subnet = str(self.subnet)
        dnat = [
            "fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @hostports",
            "fib daddr type local dnat ip to meta l4proto . th dport map @hostports_any",
        ]
        script = [
            f"add table {t}",
            f"add map {t} hostports {{ type ipv4_addr . inet_proto . inet_service : "
            "ipv4_addr . inet_service; }",
            f"add map {t} hostports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}",
            f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
            f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
            f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
            f"flush chain {t} prerouting",
            f"flush chain {t} output",
            f"flush chain {t} postrouting",
            *(f"add rule {t} prerouting {rule}" for rule in dnat),
            *(f"add rule {t} output {rule}" for rule in dnat),
            f"add rule {t} postrouting ip saddr 127.0.0.0/8 ip daddr {subnet} masquerade",
            f"add rule {t} postrouting ip saddr {subnet} ip daddr {subnet} ct status dnat masquerade",
            f"add rule {t} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade",
        ]
        await _check(["nft", "-f", "-"], stdin="\n".join(script).encode(), what=f"setting up nft table {t}")

    async def _elements(self) -> list[_Element]:
        """Every element of both host-port maps (none if the table does not exist)."""
        elements: list[_Element] = []
        for name, wildcard in (("hostports", False), ("hostports_any", True)):
            rc, out, err = await _run(["nft", "-j", "list", "map", "ip", self.nft_table, name])
            if rc != 0:
                if "No such file or directory" in err:
                    continue
                raise RuntimeFailure(f"nft list map ip {self.nft_table} {name} failed: {err.strip()}")
            elements.extend(_parse_elements(out, wildcard))
        return elements

    async def _delete_elements(self, ports: Iterable[_Port]) -> None:
        by_map: dict[str, list[str]] = {}
        for port in ports:
            by_map.setdefault(self._map_for(port), []).append(port.key())
        script = [
            f"delete element ip {self.nft_table} {name} {{ {', '.join(sorted(keys))} }}"
            for name, keys in sorted(by_map.items())
        ]
        if script:
            await _check(["nft", "-f", "-"], stdin="\n".join(script).encode(), what="removing host ports")

    async def _conflicts(self, wanted: list[_Port]) -> list[tuple[str, list[str]]]:
        """Raise if a wanted host port is published by a live sandbox; return stale overlapping
        elements (whose target belongs to no sandbox) as (map, keys) to delete with the publish."""
        if not wanted:
            return []
        owners = {
            str(record["ip"]): sandbox_id
            for sandbox_id, record in self._records().items()
            if record.get("ip")
        }
        stale: dict[str, list[str]] = {}
        for element in await self._elements():
            for port in wanted:
                if not element.port.overlaps(port):
                    continue
                owner = owners.get(element.target_ip)
                if owner is not None:
                    raise RuntimeFailure(
                        f"host port {port.describe()} is already published by sandbox {owner} "
                        f"({element.port.describe()})"
                    )
                stale.setdefault(self._map_for(element.port), []).append(element.port.key())
        return [(name, sorted(set(keys))) for name, keys in sorted(stale.items())]

    def _bridge_exists(self) -> bool:
        return Path("/sys/class/net", self.bridge).exists()

    def _set_route_localnet(self) -> None:
        """Let packets from 127.0.0.0/8 be routed out of the bridge (for 127.0.0.1:<host port>)."""
        knob = Path("/proc/sys/net/ipv4/conf", self.bridge, "route_localnet")
        try:
            if knob.read_text().strip() != "1":
                knob.write_text("1\n")
        except OSError as exc:
            raise RuntimeFailure(f"cannot set route_localnet on {self.bridge}: {exc}") from exc

    # ------------------------------------------------------------------ state on disk

    def _lock(self) -> asyncio.Lock:
        return _network_lock(f"{self.bridge}|{self.nft_table}|{self.state_dir}")

    @staticmethod
    def _check_id(sandbox_id: str) -> None:
        if not _SANDBOX_ID.match(sandbox_id):
            raise RuntimeFailure(f"invalid sandbox id {sandbox_id!r}")

    def _netns_name(self, sandbox_id: str) -> str:
        return f"{self.prefix}-{sandbox_id}"

    def _netns_path(self, sandbox_id: str) -> Path:
        return NETNS_DIR / self._netns_name(sandbox_id)

    def _container_id(self, sandbox_id: str) -> str:
        return f"{self.prefix}-{sandbox_id}"

    def _record_path(self, sandbox_id: str) -> Path:
        return self._cache_dir / f"{sandbox_id}.json"

    def _load_record(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._record_path(sandbox_id).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("unreadable sandbox network record", sandbox=sandbox_id, error=str(exc))
            return {}
        return data if isinstance(data, dict) else {}

    def _save_record(self, sandbox_id: str, record: dict[str, Any]) -> None:
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._record_path(sandbox_id)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    def _records(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        if self._cache_dir.is_dir():
            for entry in self._cache_dir.glob("*.json"):
                record = self._load_record(entry.stem)
                if record is not None:
                    records[entry.stem] = record
        return records

    def _owned_ips(self) -> set[str]:
        return {str(r["ip"]) for r in self._records().values() if r.get("ip")}

    def _sandbox_ids(self) -> list[str]:
        head = f"{self.prefix}-"
        ids: set[str] = set()
        if NETNS_DIR.is_dir():
            ids.update(e.name[len(head) :] for e in NETNS_DIR.iterdir() if e.name.startswith(head))
        if self._cache_dir.is_dir():
            ids.update(e.stem for e in self._cache_dir.glob("*.json"))
        ids.update(h[len(head) :] for h in self._reservation_holders() if h.startswith(head))
        return sorted(i for i in ids if _SANDBOX_ID.match(i))

    @staticmethod
    def _write_files(directory: Path, contents: dict[Path, str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        for path, text in contents.items():
            # Rewritten in place (not replaced), so that existing bind mounts see the new content.
            with path.open("w") as handle:
                handle.write(text)
            path.chmod(0o644)

    def _remove_state_dirs(self) -> None:
        shutil.rmtree(self._ipam_dir / self.prefix, ignore_errors=True)
        for directory in (self._ipam_dir, self._cache_dir, self._files_dir):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty


# ---------------------------------------------------------------------- /etc/hosts, resolv.conf


def _hosts_text(sandbox_id: str, ip: str, hostname: str, extra_hosts: Sequence[tuple[str, str]]) -> str:
    names = [hostname]
    short = hostname.split(".", 1)[0]
    if short and short != hostname:
        names.append(short)
    lines = [
        f"# Generated by moorage for sandbox {sandbox_id}.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"{ip}\t{' '.join(names)}",
    ]
    lines.extend(f"{address}\t{name}" for address, name in extra_hosts)
    return "\n".join(lines) + "\n"


def _host_resolv() -> tuple[list[str], list[str]]:
    """Nameservers the sandbox can reach (IPv4, not loopback) and search domains of the host.

    With a loopback stub resolver (systemd-resolved's 127.0.0.53) the upstream list is used."""
    search: list[str] = []
    for candidate in (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf")):
        servers: list[str] = []
        try:
            text = candidate.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    address = ipaddress.ip_address(fields[1])
                    if address.version == 4 and not address.is_loopback and not address.is_link_local:
                        servers.append(str(address))
            elif fields and fields[0] in ("search", "domain") and not search:
                search = fields[1:]
        if servers:
            return servers, search
    return [], search


def _resolv_text(dns_servers: Sequence[str], dns_search: Sequence[str]) -> str:
    lines = ["# Generated by moorage."]
    servers = list(dns_servers)
    search = list(dns_search)
    if not servers:
        servers, host_search = _host_resolv()
        search = search or host_search
        if not servers:
            lines.append("# The host has no nameserver reachable from the sandbox (only loopback ones).")
    lines.extend(f"nameserver {server}" for server in servers)
    if search:
        lines.append(f"search {' '.join(search)}")
    return "\n".join(lines) + "\n"


__all__ = ["NETNS_DIR", "SandboxNetwork"]
