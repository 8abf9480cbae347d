"""Reconciling the runc backend's state after a restart, and periodically.

Rules:

* A container with a record (``meta.json``) is **never killed** by reconciliation: if conmon or
  runc still run it, it is adopted as it is; if it exited while the control plane was down, its
  exit code (and OOM kill) is recorded in ``final.json``, exactly as ``state`` would.
* Everything carrying our prefix **without** a record is debris of an operation that never
  returned (a crash mid-create or mid-delete) and is removed: runc containers, conmon processes
  and their exit files and socket links, bundles and their mounts, cgroup directories, sandbox
  directories (and their volume mounts) and sandbox networks.
* Ids with an operation in flight in this process (``RuncRuntime.busy``) are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field

from moorage.core.log import get_logger
from moorage.instances import mounts
from moorage.instances.runtime.base import ContainerStatus, RuntimeFailure
from moorage.instances.runtime.runc import cgroups, conmon
from moorage.instances.runtime.runc.runtime import RuncRuntime

log = get_logger("runtime.reconcile")


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)  # containers still created/running
    exited: list[str] = field(default_factory=list)  # containers whose exit was recorded now
    removed: list[str] = field(default_factory=list)  # debris removed, as "<kind>:<name>"
    errors: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(self, runtime: RuncRuntime) -> None:
        self.runtime = runtime

    async def run_forever(self, interval_s: float = 60.0) -> None:
        """:meth:`run_once` now and every ``interval_s`` seconds until cancelled."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # keep reconciling; the next round may succeed
                log.warning("reconciliation failed", error=str(exc))
            await asyncio.sleep(interval_s)

    async def run_once(self) -> ReconcileReport:
        """One round; never raises for a single failed step (see ``errors`` in the report)."""
        report = ReconcileReport()
        await self._containers(report)
        await self._runc_debris(report)
        self._file_debris(report)
        await self._cgroup_debris(report)
        await self._sandboxes(report)
        self._mount_debris(report)
        rt = self.runtime
        keep = set(rt.layout.sandbox_ids()) | {
            k.split(":", 1)[1] for k in rt.busy if k.startswith("sandbox:")
        }
        try:
            removed = await rt.network.cleanup_orphans(keep)
            report.removed.extend(f"network:{s}" for s in removed)
        except RuntimeFailure as exc:
            report.errors.append(f"network: {exc.message}")
        if report.exited or report.removed or report.errors:
            log.info(
                "reconciled",
                adopted=len(report.adopted),
                exited=report.exited,
                removed=report.removed,
                errors=report.errors,
            )
        return report

    @property
    def _head(self) -> str:
        return f"{self.runtime.prefix}-"

    def _debris(self, runc_id: str) -> bool:
        """Whether ``runc_id`` carries our prefix and belongs to no container, checked right
        before removing it (a create may have begun since the round started)."""
        if not runc_id.startswith(self._head):
            return False
        container_id = runc_id[len(self._head) :]
        rt = self.runtime
        return container_id not in rt.busy and not (rt.layout.bundle(container_id) / "meta.json").exists()

    async def _containers(self, report: ReconcileReport) -> None:
        """Adopt or record every container with a record; remove bundles without one."""
        rt = self.runtime
        for container_id in rt.layout.container_ids():
            if container_id in rt.busy:
                continue
            if rt.layout.record(container_id) is None:
                await self._step(report, f"bundle:{container_id}", rt.teardown_container(container_id))
                continue
            had_final = (rt.layout.bundle(container_id) / "final.json").exists()
            try:
                state = await rt.state(container_id)
            except RuntimeFailure as exc:
                report.errors.append(f"container:{container_id}: {exc.message}")
                continue
            if state.status is ContainerStatus.STOPPED:
                if not had_final:
                    report.exited.append(container_id)
            else:
                report.adopted.append(container_id)

    async def _runc_debris(self, report: ReconcileReport) -> None:
        try:
            listed = await self.runtime.runc.list()
        except RuntimeFailure as exc:
            report.errors.append(f"runc list: {exc.message}")
            listed = []
        for entry in listed:
            if self._debris(entry.id):
                await self._step(report, f"runc:{entry.id}", self.runtime.runc.delete(entry.id))
        for runc_id, pid in conmon.find_conmons().items():
            if self._debris(runc_id):
                conmon.kill_conmon(pid, runc_id)
                report.removed.append(f"conmon:{runc_id}")

    def _file_debris(self, report: ReconcileReport) -> None:
        layout = self.runtime.layout
        for directory, kind in ((layout.exits, "exit"), (layout.sockets, "socket")):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(directory):
                    if self._debris(entry.name):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                        report.removed.append(f"{kind}:{entry.name}")

    async def _cgroup_debris(self, report: ReconcileReport) -> None:
        parent = self.runtime.cgroup_parent
        for name in cgroups.children(parent):
            if self._debris(name):
                if await asyncio.to_thread(cgroups.remove, f"/{parent}/{name}"):
                    report.removed.append(f"cgroup:{name}")
                else:
                    report.errors.append(f"cgroup:{name}: still has processes")

    async def _sandboxes(self, report: ReconcileReport) -> None:
        """Remove sandbox directories without a record (a create that never returned)."""
        rt = self.runtime
        for sandbox_id in rt.layout.sandbox_ids():
            key = f"sandbox:{sandbox_id}"
            if key in rt.busy or (rt.layout.sandbox(sandbox_id) / "sandbox.json").exists():
                continue
            await self._step(report, key, rt.teardown_sandbox(sandbox_id))

    def _mount_debris(self, report: ReconcileReport) -> None:
        """Unmount what is mounted below the state dir for nothing we know (e.g. a bundle
        removed by hand while its rootfs stayed mounted)."""
        rt = self.runtime
        state_dir = rt.layout.state_dir
        for point in mounts.mounts_under(state_dir):
            rel = point.relative_to(state_dir).parts
            if (
                len(rel) >= 2
                and rel[0] in ("containers", "sandboxes")
                and rt.layout.state_dir.joinpath(*rel[:2]).is_dir()
            ):
                continue
            try:
                mounts.unmount(point)
                report.removed.append(f"mount:{point}")
            except RuntimeFailure as exc:
                report.errors.append(f"mount:{point}: {exc.message}")

    @staticmethod
    async def _step(report: ReconcileReport, what: str, work: Awaitable[None]) -> None:
        try:
            await work
            report.removed.append(what)
        except RuntimeFailure as exc:
            report.errors.append(f"{what}: {exc.message}")
        except OSError as exc:
            report.errors.append(f"{what}: {exc}")


__all__ = ["ReconcileReport", "Reconciler"]
