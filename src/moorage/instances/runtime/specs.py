"""Checks and defaults every backend applies to sandbox and container specs, so that the fake and
runc reject the same input and give a process the same environment."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moorage.core.errors import InvalidArgument
from moorage.instances.runtime.base import ContainerSecurity, ContainerSpec, SandboxSpec, Volume

CONTAINER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
SANDBOX_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}\Z")
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
SECRET_FILE = re.compile(r"[A-Za-z0-9._-]{1,255}\Z")
VOLUME_KINDS = ("emptyDir", "secret")
MOUNT_KINDS = ("bind", "tmpfs")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_SECRET_BYTES = 16 << 20  # all files of one secret volume together

# Linux capabilities by name (without the ``CAP_`` prefix) and bit number (linux/capability.h).
CAPABILITY_BITS: Mapping[str, int] = {
    name: bit
    for bit, name in enumerate(
        (
            "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
            "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
            "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
            "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
            "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
            "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
            "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
        )
    )
}  # fmt: skip
LINUX_CAPABILITIES = frozenset(CAPABILITY_BITS)
# Docker's default capability set: what a container's root process holds unless its spec drops
# some or adds others.
DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
ALL_CAPABILITIES = "ALL"  # in ``drop``: start from no capability at all


def _absolute(path: str, target: str) -> None:
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts or "\0" in path:
        raise InvalidArgument(f"{path!r} must be an absolute path without '..'", target=target)


def check_sandbox_spec(spec: SandboxSpec) -> None:
    """Raise ``InvalidArgument`` unless ``spec`` is well-formed."""
    if not SANDBOX_ID.match(spec.id):
        raise InvalidArgument(f"invalid sandbox id {spec.id!r}", target="id")
    names: set[str] = set()
    for volume in spec.volumes:
        if not VOLUME_NAME.match(volume.name) or volume.name in names:
            raise InvalidArgument(f"invalid or duplicate volume name {volume.name!r}", target="volumes")
        names.add(volume.name)
        if volume.kind not in VOLUME_KINDS:
            raise InvalidArgument(f"unsupported volume kind {volume.kind!r}", target="volumes")
        if volume.kind != "secret" and volume.files:
            raise InvalidArgument(f"volume {volume.name!r}: only secret volumes have files", target="volumes")
        for name in volume.files:
            if not SECRET_FILE.match(name) or name in (".", ".."):
                raise InvalidArgument(f"invalid secret file name {name!r}", target="volumes")
        if sum(len(v) for v in volume.files.values()) > MAX_SECRET_BYTES:
            raise InvalidArgument(f"secret volume {volume.name!r} is too large", target="volumes")


def check_container_spec(spec: ContainerSpec, volumes: Mapping[str, Volume]) -> None:
    """Raise ``InvalidArgument`` unless ``spec`` is well-formed and its volume mounts name
    ``volumes`` of its sandbox."""
    if not CONTAINER_ID.match(spec.id):
        raise InvalidArgument(f"invalid container id {spec.id!r}", target="id")
    if not spec.args or not spec.args[0]:
        raise InvalidArgument("a container needs a command (args)", target="args")
    _absolute(spec.cwd, "cwd")
    for entry in spec.env:
        if "=" not in entry or entry.startswith("=") or "\0" in entry:
            raise InvalidArgument(f"environment entries are KEY=value, got {entry!r}", target="env")
    destinations: set[str] = set()
    for mount in spec.mounts:
        _absolute(mount.destination, "mounts")
        if mount.kind not in MOUNT_KINDS:
            raise InvalidArgument(f"unsupported mount kind {mount.kind!r}", target="mounts")
        if mount.kind == "bind" and not mount.source.is_absolute():
            raise InvalidArgument(f"bind source {str(mount.source)!r} must be absolute", target="mounts")
        destinations.add(mount.destination.rstrip("/"))
    for vm in spec.volume_mounts:
        _absolute(vm.destination, "volumeMounts")
        if vm.volume not in volumes:
            raise InvalidArgument(f"volume {vm.volume!r} is not defined in the group", target="volumeMounts")
        destinations.add(vm.destination.rstrip("/"))
    if "" in destinations:
        raise InvalidArgument("nothing may be mounted over /", target="mounts")
    if len(destinations) != len(spec.mounts) + len(spec.volume_mounts):
        raise InvalidArgument("two mounts share a destination", target="mounts")
    res = spec.resources
    if (res.cpu is not None and res.cpu <= 0) or (res.memory_bytes is not None and res.memory_bytes <= 0):
        raise InvalidArgument("cpu and memory limits must be positive", target="resources")
    if res.pids is not None and res.pids <= 0:
        raise InvalidArgument("the pids limit must be positive", target="resources")
    if spec.stop_grace_s < 0:
        raise InvalidArgument("stop_grace_s must not be negative", target="stop_grace_s")
    _check_security(spec.security)


def _check_security(security: ContainerSecurity) -> None:
    for cap in security.capabilities_add:
        if cap not in LINUX_CAPABILITIES:
            raise InvalidArgument(f"unknown capability {cap!r} in add", target="security")
    for cap in security.capabilities_drop:
        if cap not in LINUX_CAPABILITIES and cap != ALL_CAPABILITIES:
            raise InvalidArgument(f"unknown capability {cap!r} in drop", target="security")


def capability_set(security: ContainerSecurity) -> list[str]:
    """The container's capabilities (sorted by bit, no ``CAP_`` prefix), as Docker computes them:
    the default set minus ``capabilities_drop`` (``ALL`` drops every one), plus
    ``capabilities_add`` — a capability both dropped and added is kept. A root process holds
    exactly these (bounding, permitted, effective); a non-root process keeps them only in its
    bounding set (``execve`` clears the others)."""
    kept = set() if ALL_CAPABILITIES in security.capabilities_drop else set(DEFAULT_CAPABILITIES)
    kept -= set(security.capabilities_drop)
    kept |= set(security.capabilities_add)
    return sorted(kept, key=CAPABILITY_BITS.__getitem__)


def capability_mask(capabilities: Sequence[str]) -> int:
    """The bit mask of ``capabilities`` as ``/proc/<pid>/status`` shows it (``CapEff`` etc.)."""
    mask = 0
    for cap in capabilities:
        mask |= 1 << CAPABILITY_BITS[cap]
    return mask


def process_env(env: Sequence[str], *, home: str, hostname: str) -> list[str]:
    """The container process's environment: ``env`` plus the defaults Docker adds when absent
    (``PATH``, ``HOSTNAME``, ``HOME``). Later entries of ``env`` win over earlier ones."""
    merged: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("HOSTNAME", hostname)
    merged.setdefault("HOME", home)
    return [f"{k}={v}" for k, v in merged.items()]


@dataclass(frozen=True)
class ImageProcess:
    """The process fields of a :class:`ContainerSpec` derived from an image config."""

    args: list[str]
    env: list[str]
    cwd: str
    user: str | None


def image_process(
    image_config: Mapping[str, Any], *, command: Sequence[str] = (), env: Sequence[str] = ()
) -> ImageProcess:
    """Merge an OCI image config (the whole config blob, with its ``config`` object) with a
    container's overrides, as Azure Container Instances does: a ``command`` replaces the image's
    ``Entrypoint`` *and* ``Cmd``; ``env`` entries override the image's by name; the working
    directory and user come from the image. Raises ``InvalidArgument`` when neither gives a
    command."""
    config = image_config.get("config") or {}
    if not isinstance(config, Mapping):
        config = {}
    entrypoint = [str(a) for a in config.get("Entrypoint") or []]
    cmd = [str(a) for a in config.get("Cmd") or []]
    args = list(command) if command else [*entrypoint, *cmd]
    if not args:
        raise InvalidArgument("the image defines no command and the container gives none", target="command")
    merged: dict[str, str] = {}
    for entry in [*(str(e) for e in config.get("Env") or []), *env]:
        key, _, value = entry.partition("=")
        if key:
            merged[key] = value
    cwd = str(config.get("WorkingDir") or "/")
    user = str(config.get("User")) if config.get("User") else None
    return ImageProcess(
        args=args,
        env=[f"{k}={v}" for k, v in merged.items()],
        cwd=cwd if cwd.startswith("/") else "/" + cwd,
        user=user,
    )
