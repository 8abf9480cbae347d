"""Claims: who may touch a container's or a sandbox's host objects right now.

Creating a container makes host objects (bundle directory, overlay mount, runc state, cgroup,
conmon, exit file, socket link) *before* its record (``meta.json``) is written; creating a sandbox
makes its directory, volume mounts and network namespace before ``sandbox.json``. Until the record
exists, such objects look exactly like the debris of a create that crashed, which the reconciler
removes. Deleting works the other way round: the record goes with the bundle, before the last
objects. Claims keep the reconciler away from objects that an operation of this process is making
or removing:

* **Operations claim first.** ``create``/``start``/``delete`` of container ``<id>`` hold the claim
  ``<id>``, ``create_sandbox``/``delete_sandbox`` hold ``sandbox:<id>``, from before they touch
  anything until they are done (the record is saved, or every object is gone). A claim is an
  ``asyncio.Lock`` per key: operations on one key queue up.
* **The reconciler removes per key only under a claim of its own.** It *tries* the claim (never
  waits: an operation in flight means the object is not debris) and, holding it, checks again
  that there is no record before it removes anything. An operation that begins meanwhile waits for
  the reconciler's claim, then sees the debris gone (or removes what is left itself).
* **Sweeps by listing freeze.** Removing whatever a listing finds that is not on a keep-list (the
  network backend's ``cleanup_orphans``) cannot take a claim per object. The reconciler
  :meth:`Claims.freeze` s instead: while frozen no new claim starts (operations wait at the door),
  and the keys claimed at the moment of freezing (held or waited for) are added to the keep-list.
  An operation that claimed before the freeze is kept; one that did not has made nothing yet.

Keys are released (and forgotten) when nobody holds or waits for them, so the table stays as small
as the set of operations in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters


class Claims:
    """Per-key claims and freezes (see the module docstring). For one event loop."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # Set while frozen; a new event per freeze, so that nothing binds to a stale loop.
        self._thawed: asyncio.Event | None = None

    def claimed(self) -> frozenset[str]:
        """Keys held or waited for right now."""
        return frozenset(self._entries)

    def is_claimed(self, key: str) -> bool:
        return key in self._entries

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Claim ``key``: wait for a freeze to end, then for the key's current holder."""
        while self._thawed is not None:
            await self._thawed.wait()
        entry = self._enter(key)  # registered from here on: a freeze keeps it
        try:
            async with entry.lock:
                yield
        finally:
            self._leave(key, entry)

    @asynccontextmanager
    async def attempt(self, key: str) -> AsyncIterator[bool]:
        """Claim ``key`` only if nobody holds or waits for it and nothing is frozen; yields
        whether the claim is ours (never waits)."""
        if self._thawed is not None or key in self._entries:
            yield False
            return
        entry = self._enter(key)
        # Uncontended (a fresh lock): acquire returns without suspending.
        await entry.lock.acquire()
        try:
            yield True
        finally:
            entry.lock.release()
            self._leave(key, entry)

    @asynccontextmanager
    async def freeze(self) -> AsyncIterator[frozenset[str]]:
        """Stop new claims until the block ends; yields the keys claimed at the start (the
        operations in flight, which keep their claims and may go on). Freezes do not nest:
        callers serialise them (the reconciler runs one round at a time)."""
        if self._thawed is not None:
            raise RuntimeError("claims are frozen already")
        thawed = self._thawed = asyncio.Event()
        try:
            yield self.claimed()
        finally:
            self._thawed = None
            thawed.set()

    def _enter(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        return entry

    def _leave(self, key: str, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and self._entries.get(key) is entry:
            del self._entries[key]


__all__ = ["Claims"]
