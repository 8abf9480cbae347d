"""``RuncRuntime``: containers run by runc, each supervised by its own conmon.

* **State of record is on disk** (see :mod:`.layout`): runc's state under a private ``--root``,
  conmon's exit files, our ``meta.json``/``sandbox.json``. The runtime object holds no truth of
  its own, so a new instance on the same ``state_dir`` (after a crash or a restart) sees every
  container as it is; :meth:`RuncRuntime.reconcile` then records exits and sweeps debris.
* **Names**: a container ``<id>`` is runc container ``<prefix>-<id>`` in cgroup
  ``/<cgroup_parent>/<prefix>-<id>``, so several runtimes (or test sessions) can share a host
  with different prefixes. Prefixes must not be dash-extensions of each other.
* **Exit codes** come from conmon's exit file (``128+n`` for a signal ``n``). OOM kills are read
  from the container's memory cgroup, which ``runc delete`` removes: they are recorded in
  ``final.json`` the first time the exit is observed (by ``state``/``wait``/the reconciler).
* **Stop** is SIGTERM, the grace period, then SIGKILL: a container's PID 1 ignores SIGTERM unless it
  installs a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal as signals
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from moorage.core.errors import AlreadyExists, Conflict
from moorage.core.log import get_logger
from moorage.instances import mounts
from moorage.instances.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ExecResult,
    ExecTimeout,
    LogLine,
    PortMapping,
    RuntimeFailure,
    Sandbox,
    SandboxNotFound,
    SandboxSpec,
    TerminalSize,
    Volume,
)
from moorage.instances.runtime.runc import cgroups, conmon
from moorage.instances.runtime.runc.bundle import DEFAULT_RLIMITS, SandboxFiles, clamp_rlimits, oci_config
from moorage.instances.runtime.runc.claims import Claims
from moorage.instances.runtime.runc.cli import RuncCli, error_text
from moorage.instances.runtime.runc.layout import (
    ContainerRecord,
    StateLayout,
    now,
    parse_time,
    read_json,
    write_json,
)
from moorage.instances.runtime.runc.logs import LogCursor, read_log
from moorage.instances.runtime.runc.terminal import RuncTerminal
from moorage.instances.runtime.specs import check_container_spec, check_sandbox_spec, process_env
from moorage.instances.runtime.users import read_in_root, resolve_user

if TYPE_CHECKING:
    from moorage.instances.runtime.runc.reconcile import ReconcileReport

log = get_logger("runtime.runc")

_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{0,30}\Z")
KILL_WAIT_S = 30.0  # after SIGKILL, how long until an exit must show
EXIT_FILE_WAIT_S = 5.0  # runc says stopped; how long conmon may take to write the exit file
CONMON_EXIT_WAIT_S = 5.0
LOG_SIZE_MAX = 10 << 20
FOLLOW_INTERVAL_S = 0.1  # how often follow_logs looks for new log lines
FOLLOW_STATE_EVERY = 50
_NOT_FOUND_EXEC = ("executable file not found", "no such file or directory")


class NetworkBackend(Protocol):
    """What the runtime needs from sandbox networking (``SandboxNetwork`` in :mod:`.network`)."""

    async def create(self, sandbox_id: str, ports: Sequence[PortMapping]) -> tuple[str, str]:
        """Create the sandbox's network namespace; return (netns path, IP)."""

    async def delete(self, sandbox_id: str) -> None:
        """Remove it (idempotent)."""

    async def sandboxes(self) -> list[str]:
        """Ids of every sandbox with any network trace."""

    async def hosts_files(
        self,
        sandbox_id: str,
        hostname: str,
        extra_hosts: Sequence[tuple[str, str]] = (),
        dns_servers: Sequence[str] = (),
        dns_search: Sequence[str] = (),
    ) -> tuple[Path, Path]:
        """Write the sandbox's /etc/hosts and /etc/resolv.conf; return their paths."""

    async def cleanup_orphans(self, keep: set[str]) -> list[str]:
        """Delete every sandbox network not in ``keep``; return the ids removed."""


def sandbox_key(sandbox_id: str) -> str:
    """The claim key of a sandbox (a container's is its id; sandbox ids may equal container ids)."""
    return f"sandbox:{sandbox_id}"


def _exit_code(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None  # not written completely yet


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


class RuncRuntime:
    """The :class:`~moorage.instances.runtime.base.Runtime` contract with runc and conmon.

    Needs root. ``state_dir`` must be on a filesystem overlayfs accepts as upper layer (ext4,
    xfs). Construction only creates directories; call :meth:`reconcile` at start-up (and
    periodically, see :class:`~.reconcile.Reconciler`).

    ``rlimits`` are requested ``{name: (soft, hard)}`` and clamped to this process's hard limits.
    ``supervisor_cgroup`` (e.g. ``/moorage-conmon``): move each conmon there in every hierarchy,
    so that it does not live in (and die with) the control plane's cgroup, as it would under a
    systemd unit with ``KillMode=control-group``; it must not be ``/<cgroup_parent>/<prefix>-*``.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        network: NetworkBackend,
        runc: str = "/usr/sbin/runc",
        conmon: str = "/usr/bin/conmon",
        prefix: str = "moorage",
        runc_root: Path = Path("/run/moorage/runc"),
        cgroup_parent: str = "moorage",
        log_size_max: int = LOG_SIZE_MAX,
        rlimits: Mapping[str, tuple[int, int]] = DEFAULT_RLIMITS,
        supervisor_cgroup: str | None = None,
    ) -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"invalid prefix {prefix!r}")
        self.layout = StateLayout(Path(state_dir).absolute())
        self.layout.ensure()
        self.network = network
        self.runc = RuncCli(runc, Path(runc_root))
        self.conmon = conmon
        self.prefix = prefix
        self.cgroup_parent = cgroup_parent.strip("/")
        self.log_size_max = log_size_max
        self.rlimits = clamp_rlimits(rlimits)
        self.supervisor_cgroup = supervisor_cgroup
        self._swap_accounting = cgroups.memory_swap_accounting()
        # Operations claim the ids they work on; the reconciler leaves claimed ids alone (see
        # :mod:`.claims`). Keys: ``<container id>`` and ``sandbox:<sandbox id>``.
        self.claims = Claims()
        self._rounds = asyncio.Lock()  # one reconciliation round at a time

    # ------------------------------------------------------------------ naming

    def runc_id(self, container_id: str) -> str:
        return f"{self.prefix}-{container_id}"

    def cgroups_path(self, container_id: str) -> str:
        return f"/{self.cgroup_parent}/{self.runc_id(container_id)}"

    def _record(self, container_id: str) -> ContainerRecord:
        record = self.layout.record(container_id) if container_id and "/" not in container_id else None
        if record is None:
            raise ContainerNotFound(f"container {container_id!r} not found", target=container_id)
        return record

    # ------------------------------------------------------------------ sandboxes

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        check_sandbox_spec(spec)
        async with self.claims.hold(sandbox_key(spec.id)):
            directory = self.layout.sandbox(spec.id)
            if (directory / "sandbox.json").exists():
                raise AlreadyExists(f"sandbox {spec.id!r} already exists", code="SandboxAlreadyExists")
            if directory.exists():  # debris of a create that never finished
                await self.teardown_sandbox(spec.id)
            directory.mkdir(mode=0o700)
            try:
                return await self._create_sandbox(spec, directory)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.teardown_sandbox(spec.id)
                raise

    async def _create_sandbox(self, spec: SandboxSpec, directory: Path) -> Sandbox:
        volumes_dir = directory / "volumes"
        volumes_dir.mkdir()
        volumes: dict[str, Any] = {}
        for volume in spec.volumes:
            await asyncio.to_thread(self._make_volume, volumes_dir / volume.name, volume)
            volumes[volume.name] = {"kind": volume.kind}
        hostname_file = directory / "hostname"
        hostname_file.write_text(spec.hostname + "\n")
        hostname_file.chmod(0o644)
        netns, ip = await self.network.create(spec.id, spec.ports)
        hosts, resolv = await self.network.hosts_files(
            spec.id, spec.hostname, spec.extra_hosts, spec.dns_servers, spec.dns_search
        )
        sandbox = Sandbox(id=spec.id, ip=ip, ports=tuple(spec.ports), netns=netns)
        record = {
            "id": spec.id,
            "hostname": spec.hostname,
            "ip": ip,
            "netns": netns,
            "ports": [asdict(p) for p in spec.ports],
            "hosts": str(hosts),
            "resolv_conf": str(resolv),
            "volumes": volumes,
            "created_at": now().isoformat(),
        }
        write_json(directory / "sandbox.json", record)
        log.info("sandbox created", sandbox=spec.id, ip=ip)
        return sandbox

    @staticmethod
    def _make_volume(path: Path, volume: Volume) -> None:
        path.mkdir()
        if volume.kind == "emptyDir":
            path.chmod(0o777)
            return
        total = sum(len(content) for content in volume.files.values())
        mounts.mount_tmpfs(path, size_bytes=max(1 << 20, 2 * total + (64 << 10)))
        for name, content in volume.files.items():
            fd = os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)

    def _sandbox_record(self, sandbox_id: str) -> dict[str, Any]:
        data = read_json(self.layout.sandbox(sandbox_id) / "sandbox.json") if "/" not in sandbox_id else None
        if data is None:
            raise SandboxNotFound(f"sandbox {sandbox_id!r} not found", target=sandbox_id)
        return data

    @staticmethod
    def _sandbox_from(data: dict[str, Any]) -> Sandbox:
        ports = tuple(PortMapping(**p) for p in data.get("ports", []))
        return Sandbox(id=str(data["id"]), ip=data.get("ip"), ports=ports, netns=data.get("netns"))

    async def delete_sandbox(self, sandbox_id: str) -> None:
        if "/" in sandbox_id or not sandbox_id:
            return
        async with self.claims.hold(sandbox_key(sandbox_id)):
            if not self.layout.sandbox(sandbox_id).exists():
                return
            members = [
                container_id
                for container_id in self.layout.container_ids()
                if (record := self.layout.record(container_id)) is not None
                and record.sandbox_id == sandbox_id
            ]
            results = await asyncio.gather(*(self.delete(c) for c in members), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await self.teardown_sandbox(sandbox_id)
        log.info("sandbox deleted", sandbox=sandbox_id)

    async def teardown_sandbox(self, sandbox_id: str) -> None:
        """Remove a sandbox's network, volume mounts and directory (for ``delete_sandbox`` and
        the reconciler; its containers must be gone already). Idempotent."""
        directory = self.layout.sandbox(sandbox_id)
        await self.network.delete(sandbox_id)
        await asyncio.to_thread(self._remove_tree, directory)

    @staticmethod
    def _remove_tree(directory: Path) -> None:
        """Unmount whatever is mounted below ``directory``, then remove it. Refuses (rather than
        delete through a mount into someone else's files) when a mount stays."""
        mounts.unmount_all(directory)
        left = mounts.mounts_under(directory)
        if left:
            raise RuntimeFailure(f"cannot remove {directory}: still mounted: {', '.join(map(str, left))}")
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            shutil.rmtree(directory)  # raise the real error

    async def sandboxes(self) -> list[Sandbox]:
        found = []
        for sandbox_id in self.layout.sandbox_ids():
            data = read_json(self.layout.sandbox(sandbox_id) / "sandbox.json")
            if data is not None:
                found.append(self._sandbox_from(data))
        return found

    # ------------------------------------------------------------------ containers

    async def create(self, spec: ContainerSpec) -> ContainerState:
        sandbox = self._sandbox_record(spec.sandbox_id)
        volume_kinds = {name: v.get("kind", "emptyDir") for name, v in sandbox.get("volumes", {}).items()}
        check_container_spec(spec, {name: Volume(name, kind) for name, kind in volume_kinds.items()})
        async with self.claims.hold(spec.id):
            bundle = self.layout.bundle(spec.id)
            if (bundle / "meta.json").exists():
                raise ContainerAlreadyExists(f"container {spec.id!r} already exists", target=spec.id)
            if bundle.exists():  # debris of a create that never returned
                await self.teardown_container(spec.id)
            try:
                pid = await self._create(spec, sandbox, volume_kinds)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.teardown_container(spec.id)
                raise
        log.info("container created", container=spec.id, sandbox=spec.sandbox_id, pid=pid)
        return ContainerState(id=spec.id, sandbox_id=spec.sandbox_id, status=ContainerStatus.CREATED, pid=pid)

    async def _create(
        self, spec: ContainerSpec, sandbox: dict[str, Any], volume_kinds: dict[str, str]
    ) -> int:
        bundle = self.layout.bundle(spec.id)
        bundle.mkdir(mode=0o700)
        rootfs = bundle / "rootfs"
        for name in ("rootfs", "upper", "work"):
            (bundle / name).mkdir()
        rootfs.chmod(0o755)
        await asyncio.to_thread(
            mounts.mount_overlay, spec.rootfs_layers, bundle / "upper", bundle / "work", rootfs
        )
        user = resolve_user(spec.user, lambda path: read_in_root(rootfs, path))
        hostname = str(sandbox.get("hostname", spec.sandbox_id))
        sandbox_dir = self.layout.sandbox(spec.sandbox_id)
        files = SandboxFiles(
            hostname=hostname,
            netns=sandbox.get("netns"),
            hosts=Path(sandbox["hosts"]) if sandbox.get("hosts") else None,
            resolv_conf=Path(sandbox["resolv_conf"]) if sandbox.get("resolv_conf") else None,
            hostname_file=sandbox_dir / "hostname",
            volumes={
                name: (sandbox_dir / "volumes" / name, kind == "secret")
                for name, kind in volume_kinds.items()
            },
        )
        config = oci_config(
            spec,
            user=user,
            env=process_env(spec.env, home=user.home, hostname=hostname),
            sandbox=files,
            cgroups_path=self.cgroups_path(spec.id),
            rlimits=self.rlimits,
            swap_accounting=self._swap_accounting,
        )
        write_json(bundle / "config.json", config)
        conmon_files = self.layout.files(spec.id)
        # A stale exit file (a crash between runc delete and its removal) would read as this
        # container's exit.
        conmon_files.exit_file(self.runc_id(spec.id)).unlink(missing_ok=True)
        pid = await conmon.launch(
            conmon=self.conmon,
            runc=self.runc.runc,
            runc_root=self.runc.root,
            runc_id=self.runc_id(spec.id),
            files=conmon_files,
            log_size_max=self.log_size_max,
        )
        if self.supervisor_cgroup:
            supervisor = conmon.conmon_pid(conmon_files, self.runc_id(spec.id))
            if supervisor is not None:
                await asyncio.to_thread(cgroups.attach, supervisor, self.supervisor_cgroup)
        record = ContainerRecord(
            id=spec.id,
            sandbox_id=spec.sandbox_id,
            runc_id=self.runc_id(spec.id),
            cgroups_path=self.cgroups_path(spec.id),
            stop_grace_s=spec.stop_grace_s,
            created_at=now(),
        )
        write_json(bundle / "meta.json", record.to_json())
        return pid

    async def start(self, container_id: str) -> ContainerState:
        async with self.claims.hold(container_id):
            record = self._record(container_id)
            bundle = self.layout.bundle(container_id)
            started = bundle / "started"
            if started.exists() or (bundle / "final.json").exists():
                raise await self._not_created(record)
            # No ``runc state`` first (a runc process, ~6 ms): runc itself refuses to start
            # anything but a created container, and only then do we ask what it is.
            started.write_text(now().isoformat())
            try:
                await self.runc.start(record.runc_id)
            except RuntimeFailure:
                started.unlink(missing_ok=True)
                current = await self.runc.state(record.runc_id)
                if current is None or current.status != "created":
                    raise await self._not_created(record) from None
                raise
            except BaseException:
                started.unlink(missing_ok=True)
                raise
        log.info("container started", container=container_id)
        return await self._started_state(record)

    async def _not_created(self, record: ContainerRecord) -> Conflict:
        current = await self.runc.state(record.runc_id)
        status = current.status if current is not None else "stopped"
        return Conflict(f"container {record.id!r} is {status}, not created", code="ContainerNotCreated")

    async def _started_state(self, record: ContainerRecord) -> ContainerState:
        """The state right after a successful ``runc start``: running while the init process
        lives and conmon has written no exit (read from /proc, not from another ``runc state``);
        otherwise whatever :meth:`state` finds."""
        files = self.layout.files(record.id)
        pid = conmon.read_pid(files.init_pid)
        if pid is not None and _exit_code(files.exit_file(record.runc_id)) is None and _alive(pid):
            return ContainerState(
                id=record.id,
                sandbox_id=record.sandbox_id,
                status=ContainerStatus.RUNNING,
                pid=pid,
                started_at=parse_time(_read_text(files.bundle / "started")),
            )
        return await self.state(record.id)

    async def state(self, container_id: str) -> ContainerState:
        record = self._record(container_id)
        try:
            return await self._state(record)
        except FileNotFoundError:  # deleted under our feet
            raise ContainerNotFound(f"container {container_id!r} not found", target=container_id) from None

    async def _state(self, record: ContainerRecord) -> ContainerState:
        bundle = self.layout.bundle(record.id)
        base = ContainerState(
            id=record.id,
            sandbox_id=record.sandbox_id,
            status=ContainerStatus.UNKNOWN,
            started_at=parse_time(_read_text(bundle / "started")),
        )
        final = read_json(bundle / "final.json")
        if final is not None:
            code = final.get("exit_code")
            return replace(
                base,
                status=ContainerStatus.STOPPED,
                exit_code=code if isinstance(code, int) else None,
                oom_killed=bool(final.get("oom_killed")),
                finished_at=parse_time(final.get("finished_at")),
            )
        exit_file = self.layout.files(record.id).exit_file(record.runc_id)
        if _exit_code(exit_file) is not None:
            return self._finalize(record, base)
        try:
            current = await self.runc.state(record.runc_id)
        except RuntimeFailure as exc:
            log.warning("runc state failed", container=record.id, error=exc.message)
            return base
        if current is not None and current.status in ("creating", "created"):
            return replace(base, status=ContainerStatus.CREATED, pid=current.pid or None)
        if current is not None and current.status in ("running", "paused"):
            return replace(base, status=ContainerStatus.RUNNING, pid=current.pid or None)
        # Stopped (or runc forgot it: a reboot cleared its root). conmon writes the exit file
        # right after reaping the process; give it a moment while it lives.
        files = self.layout.files(record.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EXIT_FILE_WAIT_S
        while _exit_code(exit_file) is None and conmon.conmon_pid(files, record.runc_id) is not None:
            if loop.time() > deadline:
                # conmon lives but has not written the exit yet (a very busy host): do not
                # record an unknown exit code for good; the next look will tell.
                return base
            await asyncio.sleep(0.01)
        return self._finalize(record, base)

    def _finalize(self, record: ContainerRecord, base: ContainerState) -> ContainerState:
        """Record the exit (code from conmon's exit file, None when it never wrote one; OOM from
        the cgroup) in ``final.json``, so it survives ``runc delete`` and restarts."""
        files = self.layout.files(record.id)
        exit_file = files.exit_file(record.runc_id)
        code = _exit_code(exit_file)
        kills = cgroups.oom_kills(record.cgroups_path)
        oom = bool(kills) or (files.persist / "oom").exists() or (files.bundle / "oom").exists()
        finished = _mtime(exit_file) or now()
        if files.bundle.is_dir():
            write_json(
                files.bundle / "final.json",
                {"exit_code": code, "oom_killed": oom, "finished_at": finished.isoformat()},
            )
        return replace(
            base, status=ContainerStatus.STOPPED, exit_code=code, oom_killed=oom, finished_at=finished
        )

    async def wait(self, container_id: str, timeout_s: float | None = None) -> ContainerState:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        pidfd: int | None = None
        fired = False
        interval = 0.01
        try:
            while True:
                state = await self.state(container_id)
                if state.status is ContainerStatus.STOPPED:
                    return state
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return state
                if pidfd is None and not fired and state.status is ContainerStatus.RUNNING and state.pid:
                    with contextlib.suppress(OSError):
                        pidfd = os.pidfd_open(state.pid)
                pause = interval if remaining is None else min(interval, remaining)
                if pidfd is not None:
                    fired = await _readable(pidfd, 0.25 if remaining is None else min(0.25, remaining))
                    if fired:  # the process is gone: only the exit file is still to come
                        os.close(pidfd)
                        pidfd = None
                else:
                    await asyncio.sleep(pause)
                    interval = min(interval * 2, 0.25)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    async def kill(self, container_id: str, signal: int) -> None:
        record = self._record(container_id)
        state = await self.state(container_id)
        if state.status is ContainerStatus.STOPPED:
            return
        try:
            await self.runc.kill(record.runc_id, signal)
        except RuntimeFailure:
            if (await self.state(container_id)).status is ContainerStatus.STOPPED:
                return  # it exited meanwhile
            raise

    async def stop(self, container_id: str, grace_s: float | None = None) -> ContainerState:
        record = self._record(container_id)
        grace = record.stop_grace_s if grace_s is None else grace_s
        state = await self.state(container_id)
        if state.status is ContainerStatus.STOPPED:
            return state
        if state.status is ContainerStatus.RUNNING and grace > 0:
            await self.kill(container_id, signals.SIGTERM)
            state = await self.wait(container_id, grace)
            if state.status is ContainerStatus.STOPPED:
                return state
        await self.kill(container_id, signals.SIGKILL)
        state = await self.wait(container_id, KILL_WAIT_S)
        if state.status is not ContainerStatus.STOPPED:
            raise RuntimeFailure(f"container {container_id!r} did not exit after SIGKILL")
        log.info("container stopped", container=container_id, exit_code=state.exit_code)
        return state

    async def delete(self, container_id: str) -> None:
        if not container_id or "/" in container_id:
            return
        async with self.claims.hold(container_id):
            if not self.layout.bundle(container_id).exists():
                return
            await self.teardown_container(container_id)
        log.info("container deleted", container=container_id)

    async def teardown_container(self, container_id: str) -> None:
        """Remove every trace of a container: runc's state (killing it if it runs), conmon, the
        mounts, the bundle, the exit file, the socket link and the cgroups (for ``delete`` and the
        reconciler). Idempotent."""
        runc_id = self.runc_id(container_id)
        files = self.layout.files(container_id)
        await self.runc.delete(runc_id)  # --force: SIGKILLs a running container first
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONMON_EXIT_WAIT_S
        while (pid := conmon.conmon_pid(files, runc_id)) is not None:
            if loop.time() > deadline:
                conmon.kill_conmon(pid, runc_id)
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(self._remove_tree, files.bundle)
        files.exit_file(runc_id).unlink(missing_ok=True)
        (files.socket_dir / runc_id).unlink(missing_ok=True)
        await asyncio.to_thread(cgroups.remove, self.cgroups_path(container_id))

    async def containers(self) -> list[ContainerState]:
        async def one(container_id: str) -> ContainerState | None:
            try:
                return await self.state(container_id)
            except ContainerNotFound:
                return None

        states = await asyncio.gather(*(one(i) for i in self.layout.container_ids()))
        return [s for s in states if s is not None]

    async def logs(self, container_id: str, *, tail: int | None = None) -> list[LogLine]:
        self._record(container_id)
        return await asyncio.to_thread(read_log, self.layout.files(container_id).log, tail=tail)

    async def exec(self, container_id: str, args: Sequence[str], *, timeout_s: float = 30.0) -> ExecResult:
        record = self._record(container_id)
        if (await self.state(container_id)).status is not ContainerStatus.RUNNING:
            raise ContainerNotRunning(f"container {container_id!r} is not running", target=container_id)
        if not args:
            raise RuntimeFailure("exec needs a command")
        exec_dir = self.layout.bundle(container_id) / "exec"
        exec_dir.mkdir(exist_ok=True)
        token = secrets.token_hex(6)
        out_path, err_path = exec_dir / f"{token}.out", exec_dir / f"{token}.err"
        pid_path, log_path = exec_dir / f"{token}.pid", exec_dir / f"{token}.log"
        try:
            # The exec'd process writes to files, never to a pipe of ours: a background child it
            # leaves behind would otherwise keep the pipe (and this call) open.
            with out_path.open("wb") as out, err_path.open("wb") as err:
                argv = self.runc.argv(
                    "--log", str(log_path), "--log-format", "json",
                    "exec", "--pid-file", str(pid_path), record.runc_id, *args,
                )  # fmt: skip
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
                )
            try:
                code = await asyncio.wait_for(proc.wait(), timeout_s)
            except BaseException:
                await self._kill_exec(proc, pid_path)
                raise
            stdout = out_path.read_text(errors="replace")
            stderr = err_path.read_text(errors="replace")
            if code == 255:  # runc's own failure, or the process's exit status 255
                message = error_text(_read_text(log_path) or "")
                if message and any(s in message for s in _NOT_FOUND_EXEC):
                    return ExecResult(127, stdout, stderr if message in stderr else f"{stderr}{message}\n")
                if message:
                    if (await self.state(container_id)).status is not ContainerStatus.RUNNING:
                        raise ContainerNotRunning(
                            f"container {container_id!r} is not running", target=container_id
                        )
                    raise RuntimeFailure(f"exec in {container_id!r} failed: {message}")
            return ExecResult(code, stdout, stderr)
        except TimeoutError:
            raise ExecTimeout(f"exec in {container_id!r} outlived {timeout_s}s and was killed") from None
        finally:
            for path in (out_path, err_path, pid_path, log_path):
                path.unlink(missing_ok=True)

    async def exec_terminal(
        self, container_id: str, args: Sequence[str], *, size: TerminalSize
    ) -> RuncTerminal:
        """A detached ``runc exec`` on a terminal runc hands over to us (see :mod:`.terminal`)."""
        record = self._record(container_id)
        if (await self.state(container_id)).status is not ContainerStatus.RUNNING:
            raise ContainerNotRunning(f"container {container_id!r} is not running", target=container_id)
        if not args:
            raise RuntimeFailure("exec needs a command")
        bundle = self.layout.bundle(container_id)
        exec_dir = bundle / "exec"
        exec_dir.mkdir(exist_ok=True)
        # The container's own process settings (env, cwd, user, capabilities, rlimits), as a
        # plain ``runc exec`` would use them, with the new args.
        process = dict((read_json(bundle / "config.json") or {}).get("process") or {})
        env = [str(e) for e in process.get("env") or []]
        if not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        process.update(args=list(args), env=env)
        return await RuncTerminal.start(
            self.runc.argv(),
            record.runc_id,
            process,
            size=size,
            work_dir=exec_dir,
            token=secrets.token_hex(6),
        )

    async def follow_logs(self, container_id: str) -> AsyncIterator[LogLine]:
        record = self._record(container_id)
        files = self.layout.files(container_id)
        exit_file = files.exit_file(record.runc_id)
        cursor = LogCursor(files.log)
        polls = 0
        while True:
            # conmon writes the exit file after the process's last output reached the log; the
            # (costlier) runc state is asked now and then, for a conmon that died.
            polls += 1
            if _exit_code(exit_file) is not None or not files.bundle.is_dir():
                break
            if polls % FOLLOW_STATE_EVERY == 0:
                try:
                    if (await self.state(container_id)).status is ContainerStatus.STOPPED:
                        break
                except ContainerNotFound:
                    break
            for line in await asyncio.to_thread(cursor.read):
                yield line
            await asyncio.sleep(FOLLOW_INTERVAL_S)
        for line in await asyncio.to_thread(cursor.flush):
            yield line

    @staticmethod
    async def _kill_exec(proc: asyncio.subprocess.Process, pid_path: Path) -> None:
        """Kill the exec'd process (runc forwards every signal but SIGKILL, and dies without
        taking the process along), then runc."""
        pid = conmon.read_pid(pid_path)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> ReconcileReport:
        """Adopt running containers, record exits that happened while nobody watched, and remove
        debris (see :class:`~.reconcile.Reconciler`). Safe to call while operations run: it never
        touches what an operation has claimed (:mod:`.claims`). Rounds run one at a time."""
        from moorage.instances.runtime.runc.reconcile import Reconciler  # noqa: PLC0415 - import cycle

        async with self._rounds:
            return await Reconciler(self).run_once()

    def supervised(self, container_id: str) -> bool:
        """Whether the container's conmon lives and it has no recorded or written exit: it is
        created or running (no ``runc`` process asked; for the reconciler's rounds)."""
        record = self.layout.record(container_id)
        if record is None:
            return False
        files = self.layout.files(container_id)
        return (
            not (files.bundle / "final.json").exists()
            and _exit_code(files.exit_file(record.runc_id)) is None
            and conmon.conmon_pid(files, record.runc_id) is not None
        )

    def describe(self) -> dict[str, Any]:
        """The runtime's configuration, for diagnostics."""
        return {
            "state_dir": str(self.layout.state_dir),
            "runc_root": str(self.runc.root),
            "prefix": self.prefix,
            "cgroup_parent": self.cgroup_parent,
            "rlimits": [dict(r) for r in self.rlimits],
        }


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


async def _readable(fd: int, timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_ready)
    try:
        await asyncio.wait_for(ready, timeout_s)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
