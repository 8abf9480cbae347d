"""The OCI runtime ``config.json`` of a container: the spec (command, env, cwd, user, mounts,
resources, capabilities, no-new-privileges) on top of Docker-like defaults (Docker's 14
capabilities, masked ``/proc`` paths, private pid/ipc/uts/mount namespaces) in the sandbox's
network namespace."""

from __future__ import annotations

import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.instances.runtime.base import ContainerSpec
from moorage.instances.runtime.specs import capability_set
from moorage.instances.runtime.users import ResolvedUser

OCI_VERSION = "1.0.2-dev"
CPU_PERIOD_US = 100_000

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Requested rlimits; each is clamped to this process's hard limit (which runc cannot exceed).
DEFAULT_RLIMITS: Mapping[str, tuple[int, int]] = {"RLIMIT_NOFILE": (1_048_576, 1_048_576)}


def clamp_rlimits(requested: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """OCI rlimits for ``requested`` ``{name: (soft, hard)}``, lowered to the hard limits of the
    calling process (runc fails with EPERM above them: RLIMIT_NOFILE's hard limit may be far below
    the usual 1048576). Unknown names raise ValueError."""
    result: list[dict[str, Any]] = []
    for name, (soft, hard) in requested.items():
        try:
            kind = getattr(resource, name)
        except AttributeError:
            raise ValueError(f"unknown rlimit {name}") from None
        _, host_hard = resource.getrlimit(kind)
        limit = hard if host_hard == resource.RLIM_INFINITY else min(hard, host_hard)
        result.append({"type": name, "soft": min(soft, limit), "hard": limit})
    return result


@dataclass(frozen=True)
class SandboxFiles:
    """What a container takes from its sandbox."""

    hostname: str
    netns: str | None  # None: a private, unconnected network namespace
    hosts: Path | None
    resolv_conf: Path | None
    hostname_file: Path | None
    volumes: Mapping[str, tuple[Path, bool]]  # name -> (host directory, always read-only)


def _bind(source: Path, destination: str, *, read_only: bool) -> dict[str, Any]:
    options = ["rbind", "rprivate", "nosuid", "nodev"]
    if read_only:
        options.append("ro")
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}


def _mounts(spec: ContainerSpec, sandbox: SandboxFiles) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",  # noqa: S108 - the container's own /dev/shm
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]
    for path, destination in (
        (sandbox.hosts, "/etc/hosts"),
        (sandbox.resolv_conf, "/etc/resolv.conf"),
        (sandbox.hostname_file, "/etc/hostname"),
    ):
        if path is not None:
            mounts.append(_bind(path, destination, read_only=False))
    for vm in spec.volume_mounts:
        source, always_ro = sandbox.volumes[vm.volume]
        mounts.append(_bind(source, vm.destination, read_only=vm.read_only or always_ro))
    for mount in spec.mounts:
        if mount.kind == "tmpfs":
            options = ["nosuid", "nodev", "mode=1777"] + (["ro"] if mount.read_only else [])
            mounts.append(
                {"destination": mount.destination, "type": "tmpfs", "source": "tmpfs", "options": options}
            )
        else:
            mounts.append(_bind(mount.source, mount.destination, read_only=mount.read_only))
    return mounts


def _resources(spec: ContainerSpec, *, swap_accounting: bool) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    wanted = spec.resources
    if wanted.memory_bytes is not None:
        memory: dict[str, Any] = {"limit": wanted.memory_bytes}
        if swap_accounting:
            memory["swap"] = wanted.memory_bytes  # memory+swap == memory: no swapping past the limit
        res["memory"] = memory
    if wanted.cpu is not None:
        res["cpu"] = {
            "quota": max(int(wanted.cpu * CPU_PERIOD_US), 1000),
            "period": CPU_PERIOD_US,
            "shares": max(int(wanted.cpu * 1024), 2),
        }
    if wanted.pids is not None:
        res["pids"] = {"limit": wanted.pids}
    return res


def oci_config(
    spec: ContainerSpec,
    *,
    user: ResolvedUser,
    env: Sequence[str],
    sandbox: SandboxFiles,
    cgroups_path: str,
    rlimits: Sequence[Mapping[str, Any]],
    swap_accounting: bool,
) -> dict[str, Any]:
    """The ``config.json`` for ``spec`` (rootfs at ``<bundle>/rootfs``)."""
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    namespaces.append({"type": "network", "path": sandbox.netns} if sandbox.netns else {"type": "network"})
    # No inheritable or ambient capabilities: a non-root process keeps them in its bounding set
    # only (execve clears the rest), as with Docker.
    caps = [f"CAP_{cap}" for cap in capability_set(spec.security)]
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
            "args": list(spec.args),
            "env": list(env),
            "cwd": spec.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [dict(r) for r in rlimits],
            "noNewPrivileges": spec.security.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": sandbox.hostname,
        "mounts": _mounts(spec, sandbox),
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": _resources(spec, swap_accounting=swap_accounting),
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
