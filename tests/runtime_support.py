"""What the runtime tests share: a busybox root filesystem built from the host's busybox-static,
a loopback-only network backend, and the conditions for running runc tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from moorage.instances.runtime.base import PortMapping, RuntimeFailure

BUSYBOX = Path("/bin/busybox")
RUNC = "/usr/sbin/runc"
CONMON = "/usr/bin/conmon"
NETNS_DIR = Path("/run/netns")

PASSWD = """root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
wheel:x:10:app
app:x:1000:
nogroup:x:65534:
"""


def runc_unavailable() -> str | None:
    """Why the runc backend cannot be tested here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in (RUNC, CONMON, str(BUSYBOX)):
        if not Path(tool).exists():
            return f"{tool} is not installed"
    if shutil.which("ip") is None:
        return "iproute2 is not installed"
    return None


def unique_prefix() -> str:
    """A runtime prefix of our own, so parallel test sessions never see each other's objects."""
    return f"mt{secrets.token_hex(4)}"


def build_busybox_rootfs(root: Path) -> Path:
    """A minimal root filesystem: busybox-static with a symlink per applet, /etc/passwd and
    /etc/group (root, app 1000, nobody), /tmp and a page for httpd under /www."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    for name in ("etc", "tmp", "proc", "sys", "dev", "www", "home/app", "root", "data"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "www/index.html").write_text("hello from moorage\n")
    with contextlib.suppress(PermissionError):  # only root can; the fake does not care
        os.chown(root / "home/app", 1000, 1000)
    return root


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


class LoopbackNetwork:
    """A network backend for tests: a named netns with only ``lo`` up (no bridge, no ports).

    Satisfies ``moorage.instances.runtime.runc.NetworkBackend``."""

    def __init__(self, state_dir: Path, prefix: str) -> None:
        self.state_dir = state_dir
        self.prefix = prefix

    def _name(self, sandbox_id: str) -> str:
        return f"{self.prefix}-{sandbox_id}"

    async def create(self, sandbox_id: str, ports: Sequence[PortMapping]) -> tuple[str, str]:
        name = self._name(sandbox_id)
        rc, out = await _ip("netns", "add", name)
        if rc != 0:
            raise RuntimeFailure(f"ip netns add {name}: {out.strip()}")
        rc, out = await _ip("-n", name, "link", "set", "lo", "up")
        if rc != 0:
            await self.delete(sandbox_id)
            raise RuntimeFailure(f"lo up in {name}: {out.strip()}")
        return str(NETNS_DIR / name), "127.0.0.1"

    async def delete(self, sandbox_id: str) -> None:
        name = self._name(sandbox_id)
        if (NETNS_DIR / name).exists():
            rc, out = await _ip("netns", "delete", name)
            if rc != 0 and (NETNS_DIR / name).exists():
                raise RuntimeFailure(f"ip netns delete {name}: {out.strip()}")
        shutil.rmtree(self.state_dir / sandbox_id, ignore_errors=True)

    async def sandboxes(self) -> list[str]:
        head = f"{self.prefix}-"
        if not NETNS_DIR.is_dir():
            return []
        return sorted(e.name[len(head) :] for e in NETNS_DIR.iterdir() if e.name.startswith(head))

    async def hosts_files(
        self,
        sandbox_id: str,
        hostname: str,
        extra_hosts: Sequence[tuple[str, str]] = (),
        dns_servers: Sequence[str] = (),
        dns_search: Sequence[str] = (),
    ) -> tuple[Path, Path]:
        directory = self.state_dir / sandbox_id
        directory.mkdir(parents=True, exist_ok=True)
        hosts = directory / "hosts"
        lines = [
            "127.0.0.1\tlocalhost",
            f"127.0.0.1\t{hostname}",
            *(f"{ip}\t{name}" for ip, name in extra_hosts),
        ]
        hosts.write_text("\n".join(lines) + "\n")
        resolv = directory / "resolv.conf"
        resolv.write_text(
            "".join(f"nameserver {s}\n" for s in dns_servers)
            + (f"search {' '.join(dns_search)}\n" if dns_search else "")
        )
        return hosts, resolv

    async def cleanup_orphans(self, keep: set[str]) -> list[str]:
        removed = []
        for sandbox_id in await self.sandboxes():
            if sandbox_id not in keep:
                await self.delete(sandbox_id)
                removed.append(sandbox_id)
        return removed


def leftovers(prefix: str, state_dir: Path) -> list[str]:
    """Every trace of the runtime with ``prefix`` on this host: mounts below ``state_dir``,
    cgroup directories, live conmon processes, runc state dirs and network namespaces."""
    found: list[str] = []
    base = str(state_dir)
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split(" ")[4]
            if point == base or point.startswith(base + "/"):
                found.append(f"mount {point}")
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parent = hierarchy / "moorage"
        if parent.is_dir():
            found.extend(f"cgroup {d}" for d in parent.iterdir() if d.is_dir() and d.name.startswith(prefix))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"conmon" in cmdline.split(b"\0")[0] and f"{prefix}-".encode() in cmdline:
            found.append(f"conmon {proc.name}")
    runc_root = Path("/run/moorage/runc")
    if runc_root.is_dir():
        found.extend(f"runc {d.name}" for d in runc_root.iterdir() if d.name.startswith(f"{prefix}-"))
    if NETNS_DIR.is_dir():
        found.extend(f"netns {d.name}" for d in NETNS_DIR.iterdir() if d.name.startswith(f"{prefix}-"))
    return found
