"""Reconciling the runc backend's state after a restart, and periodically while it runs.

Rules:

* A container with a record (``meta.json``) is **never killed** by reconciliation: if conmon or
  runc still run it, it is adopted as it is; if it exited while nobody watched, its exit code (and
  OOM kill) is recorded in ``final.json``, exactly as ``state`` would.
* Everything carrying our prefix **without** a record is debris of an operation that never
  returned (a crash mid-create or mid-delete) and is removed: runc containers, conmon processes
  and their exit files and socket links, bundles and their mounts, cgroup directories, sandbox
  directories (and their volume mounts) and sandbox networks (namespaces, CNI state, host-port
  elements in our nftables table, generated files).
* **Operations in flight are never disturbed** (a round may run at any time, concurrently with
  creates and deletes): objects of a create exist before its record does, so "no record" alone
  does not make debris. Each removal happens under a claim of the object's id that the round
  *tries* to take (:mod:`.claims`): an id an operation holds (or waits for) is skipped, and with the
  claim held the record is checked again right before removing. The network sweep, which removes
  by listing, runs while claims are frozen and keeps every sandbox claimed at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from moorage.core.log import get_logger
from moorage.instances import mounts
from moorage.instances.runtime.base import ContainerNotFound, ContainerStatus, RuntimeFailure
from moorage.instances.runtime.runc import cgroups, conmon
from moorage.instances.runtime.runc.runtime import RuncRuntime, sandbox_key

log = get_logger("runtime.reconcile")

SANDBOX_PREFIX = "sandbox:"
RUNC_LIST_ATTEMPTS = 5


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)  # containers still created/running
    exited: list[str] = field(default_factory=list)  # containers whose exit was recorded now
    removed: list[str] = field(default_factory=list)  # debris removed, as "<kind>:<name>"
    errors: list[str] = field(default_factory=list)


class Reconciler:
    """One runtime's reconciliation (see the module docstring). Use
    :meth:`RuncRuntime.reconcile` for single rounds (it serialises them) and :meth:`run_forever`
    for the periodic loop."""

    def __init__(self, runtime: RuncRuntime) -> None:
        self.runtime = runtime

    async def run_forever(
        self,
        interval_s: float,
        *,
        after_round: Callable[[ReconcileReport], Awaitable[object]] | None = None,
    ) -> None:
        """A round every ``interval_s`` seconds (the first one after ``interval_s``: start-up
        runs its own), each followed by ``after_round(report)`` (e.g. letting container groups
        pick up exits the round recorded), until cancelled. A failed round is logged and the
        loop goes on."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                report = await self.runtime.reconcile()
                if after_round is not None:
                    await after_round(report)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep reconciling; the next round may succeed
                log.warning("reconciliation round failed", error=str(exc) or type(exc).__name__)

    async def run_once(self) -> ReconcileReport:
        """One round; never raises for a single failed step (see ``errors`` in the report)."""
        report = ReconcileReport()
        await self._containers(report)
        await self._runc_debris(report)
        await self._file_debris(report)
        await self._cgroup_debris(report)
        await self._sandboxes(report)
        await self._mount_debris(report)
        await self._network_debris(report)
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

    def _container_of(self, runc_id: str) -> str | None:
        """The container id behind a name carrying our prefix (None for other names)."""
        if not runc_id.startswith(self._head) or len(runc_id) == len(self._head):
            return None
        container_id = runc_id[len(self._head) :]
        return container_id if "/" not in container_id else None

    def _unrecorded(self, container_id: str) -> bool:
        return not (self.runtime.layout.bundle(container_id) / "meta.json").exists()

    def _stray(self, container_id: str, path: Path) -> bool:
        """``path`` (a runc state dir, an exit file, a socket link) is there, and its container
        has no record."""
        return os.path.lexists(path) and self._unrecorded(container_id)

    def _stray_conmon(self, container_id: str, pid: int, runc_id: str) -> bool:
        return conmon.is_conmon_of(pid, runc_id) and self._unrecorded(container_id)

    def _stray_cgroup(self, container_id: str, cgroup_path: str) -> bool:
        return bool(cgroups.existing(cgroup_path)) and self._unrecorded(container_id)

    def _sandbox_unrecorded(self, sandbox_id: str) -> bool:
        directory = self.runtime.layout.sandbox(sandbox_id)
        return directory.is_dir() and not (directory / "sandbox.json").exists()

    async def _remove(
        self,
        report: ReconcileReport,
        key: str,
        what: str,
        is_debris: Callable[[], bool],
        work: Callable[[], Awaitable[object]],
    ) -> None:
        """Remove one piece of debris under the claim ``key``: skipped when an operation holds
        (or waits for) it, or when ``is_debris`` — asked with the claim held — says it is not
        debris, or not there, any more (the listing that named it may be stale: a delete that
        finished since has removed it already)."""
        async with self.runtime.claims.attempt(key) as ours:
            if not ours or not is_debris():
                return
            try:
                await work()
            except (RuntimeFailure, OSError) as exc:
                report.errors.append(f"{what}: {_text(exc)}")
                return
            report.removed.append(what)

    async def _containers(self, report: ReconcileReport) -> None:
        """Adopt or record every container with a record; remove bundles without one."""
        rt = self.runtime
        for container_id in rt.layout.container_ids():
            async with rt.claims.attempt(container_id) as ours:
                if not ours:
                    continue  # an operation is at work on it
                if not rt.layout.bundle(container_id).is_dir():
                    continue  # deleted since the listing
                if rt.layout.record(container_id) is None:
                    try:
                        await rt.teardown_container(container_id)
                    except (RuntimeFailure, OSError) as exc:
                        report.errors.append(f"bundle:{container_id}: {_text(exc)}")
                    else:
                        report.removed.append(f"bundle:{container_id}")
                    continue
                if rt.supervised(container_id):  # cheap: no runc process for the common case
                    report.adopted.append(container_id)
                    continue
                had_final = (rt.layout.bundle(container_id) / "final.json").exists()
                try:
                    state = await rt.state(container_id)
                except ContainerNotFound:
                    continue
                except RuntimeFailure as exc:
                    report.errors.append(f"container:{container_id}: {exc.message}")
                    continue
                if state.status is ContainerStatus.STOPPED:
                    if not had_final:
                        report.exited.append(container_id)
                else:
                    report.adopted.append(container_id)

    async def _runc_debris(self, report: ReconcileReport) -> None:
        rt = self.runtime
        listed = []
        for attempt in range(RUNC_LIST_ATTEMPTS):
            try:
                listed = await rt.runc.list()
                break
            except RuntimeFailure as exc:
                # runc stats each container's state dir after listing the root: a delete in
                # between fails the whole listing ("stat …: no such file or directory").
                if attempt == RUNC_LIST_ATTEMPTS - 1:
                    report.errors.append(f"runc list: {exc.message}")
        for entry in listed:
            container_id = self._container_of(entry.id)
            if container_id is not None:
                await self._remove(
                    report,
                    container_id,
                    f"runc:{entry.id}",
                    partial(self._stray, container_id, rt.runc.root / entry.id),
                    partial(rt.runc.delete, entry.id),
                )
        for runc_id, pid in conmon.find_conmons().items():
            container_id = self._container_of(runc_id)
            if container_id is not None:

                async def kill(pid: int = pid, runc_id: str = runc_id) -> None:
                    conmon.kill_conmon(pid, runc_id)

                await self._remove(
                    report,
                    container_id,
                    f"conmon:{runc_id}",
                    partial(self._stray_conmon, container_id, pid, runc_id),
                    kill,
                )

    async def _file_debris(self, report: ReconcileReport) -> None:
        layout = self.runtime.layout
        for directory, kind in ((layout.exits, "exit"), (layout.sockets, "socket")):
            try:
                entries = [Path(e.path) for e in os.scandir(directory)]
            except FileNotFoundError:
                continue
            for path in entries:
                container_id = self._container_of(path.name)
                if container_id is None:
                    continue

                async def unlink(path: Path = path) -> None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

                await self._remove(
                    report,
                    container_id,
                    f"{kind}:{path.name}",
                    partial(self._stray, container_id, path),
                    unlink,
                )

    async def _cgroup_debris(self, report: ReconcileReport) -> None:
        parent = self.runtime.cgroup_parent
        for name in cgroups.children(parent):
            container_id = self._container_of(name)
            if container_id is None:
                continue

            async def remove(name: str = name) -> None:
                if not await asyncio.to_thread(cgroups.remove, f"/{parent}/{name}"):
                    raise RuntimeFailure("still has processes")

            await self._remove(
                report,
                container_id,
                f"cgroup:{name}",
                partial(self._stray_cgroup, container_id, f"/{parent}/{name}"),
                remove,
            )

    async def _sandboxes(self, report: ReconcileReport) -> None:
        """Remove sandbox directories without a record (a create that never returned)."""
        rt = self.runtime
        for sandbox_id in rt.layout.sandbox_ids():
            await self._remove(
                report,
                sandbox_key(sandbox_id),
                f"sandbox:{sandbox_id}",
                partial(self._sandbox_unrecorded, sandbox_id),
                partial(rt.teardown_sandbox, sandbox_id),
            )

    async def _mount_debris(self, report: ReconcileReport) -> None:
        """Unmount what is mounted below the state dir for nothing we know (e.g. a bundle
        removed by hand while its rootfs stayed mounted)."""
        rt = self.runtime
        state_dir = rt.layout.state_dir
        for point in mounts.mounts_under(state_dir):
            rel = point.relative_to(state_dir).parts
            owner: Path | None = None
            key = f"mount:{point}"  # a key no operation takes: mounts outside bundles and sandboxes
            if len(rel) >= 2 and rel[0] == "containers":
                owner, key = state_dir / "containers" / rel[1], rel[1]
            elif len(rel) >= 2 and rel[0] == "sandboxes":
                owner, key = state_dir / "sandboxes" / rel[1], sandbox_key(rel[1])

            async def unmount(point: Path = point) -> None:
                await asyncio.to_thread(mounts.unmount, point)

            await self._remove(
                report,
                key,
                f"mount:{point}",
                partial(_stray_mount, owner, point),
                unmount,
            )

    async def _network_debris(self, report: ReconcileReport) -> None:
        """Networks of sandboxes that have no directory (and no operation in flight): removed by
        the backend's listing sweep, inside a freeze so that no sandbox create starts unseen."""
        rt = self.runtime
        async with rt.claims.freeze() as claimed:
            keep = set(rt.layout.sandbox_ids()) | {
                k[len(SANDBOX_PREFIX) :] for k in claimed if k.startswith(SANDBOX_PREFIX)
            }
            try:
                removed = await rt.network.cleanup_orphans(keep)
                report.removed.extend(f"network:{s}" for s in removed)
            except RuntimeFailure as exc:
                report.errors.append(f"network: {exc.message}")


def _text(exc: Exception) -> str:
    return exc.message if isinstance(exc, RuntimeFailure) else str(exc)


def _stray_mount(owner: Path | None, point: Path) -> bool:
    """A mount is debris when it is still mounted and the bundle or sandbox directory it lies in
    is gone (a live one's mounts are its own: they go with it)."""
    return (owner is None or not owner.is_dir()) and point in mounts.mounts_under(point)


__all__ = ["ReconcileReport", "Reconciler"]
