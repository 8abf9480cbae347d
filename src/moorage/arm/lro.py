"""Long-running operations, shaped the way azure-core's ARM poller accepts them.

A mutating request that cannot finish at once records an operation, starts its work as a task
and answers with ``Azure-AsyncOperation`` (the status resource), ``Location`` (the result
resource) and ``Retry-After: 1`` — azure-core waits 30 s between polls when Retry-After is 0 or
missing. Operations are rows in the metadata store, so a poll after a restart still answers; work
that was in flight is resumed by the runner registered for its kind, or failed if there is none.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from moorage.arm.envelopes import error_body
from moorage.arm.schema import operations
from moorage.core.clock import Clock, isoformat
from moorage.core.errors import Canceled, Internal, MoorageError, NotFound
from moorage.core.log import get_logger
from moorage.store.meta import MetaStore

log = get_logger("arm.lro")

IN_PROGRESS, SUCCEEDED, FAILED, CANCELED = "InProgress", "Succeeded", "Failed", "Canceled"
TERMINAL = (SUCCEEDED, FAILED, CANCELED)


@dataclass(frozen=True)
class Operation:
    id: str
    kind: str
    subscription_id: str
    namespace: str
    location: str
    resource_id: str
    status: str
    error: dict[str, Any] | None
    params: dict[str, Any]
    start_time: datetime
    end_time: datetime | None

    def status_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/providers/{self.namespace}/locations/"
            f"{self.location}/operationStatuses/{self.id}"
        )

    def result_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/providers/{self.namespace}/locations/"
            f"{self.location}/operationResults/{self.id}"
        )

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.status_path(),
            "name": self.id,
            "status": self.status,
            "startTime": isoformat(self.start_time),
        }
        if self.end_time:
            body["endTime"] = isoformat(self.end_time)
        if self.error:
            body["error"] = self.error
        return body


Runner = Callable[[Operation], Awaitable[None]]


class Operations:
    """Starts, tracks and resumes long-running operations."""

    def __init__(self, store: MetaStore, clock: Clock, grace_s: float = 0.25) -> None:
        self._grace_s = grace_s
        self._store = store
        self._clock = clock
        self._runners: dict[str, Runner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def register(self, kind: str, runner: Runner) -> None:
        """``runner`` does the work of operations of ``kind``; it must be idempotent (resume)."""
        self._runners[kind] = runner

    async def start(
        self,
        kind: str,
        *,
        subscription_id: str,
        namespace: str,
        location: str,
        resource_id: str,
        params: dict[str, Any] | None = None,
    ) -> Operation:
        if kind not in self._runners:
            raise KeyError(f"no runner registered for operation kind {kind!r}")
        op = Operation(
            id=str(uuid.uuid4()),
            kind=kind,
            subscription_id=subscription_id,
            namespace=namespace,
            location=location.replace(" ", "").lower() or "global",
            resource_id=resource_id,
            status=IN_PROGRESS,
            error=None,
            params=params or {},
            start_time=self._clock.now(),
            end_time=None,
        )
        async with self._store.begin() as conn:
            await conn.execute(
                operations.insert().values(
                    id=op.id,
                    kind=op.kind,
                    subscription_id=op.subscription_id,
                    namespace=op.namespace,
                    location=op.location,
                    resource_id=op.resource_id,
                    status=op.status,
                    error=None,
                    params=op.params,
                    start_time=op.start_time,
                    end_time=None,
                )
            )
        task = self._spawn(op)
        # Give quick work a moment to finish, so that the client's first poll (sent right after
        # the initial response) already sees a terminal status instead of waiting Retry-After.
        await asyncio.wait({task}, timeout=self._grace_s)
        return op

    def _spawn(self, op: Operation) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(op), name=f"lro-{op.kind}-{op.id}")
        self._tasks[op.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(op.id, None))
        return task

    async def _run(self, op: Operation) -> None:
        runner = self._runners[op.kind]
        try:
            await runner(op)
        except Canceled as error:
            await self._finish(op.id, CANCELED, error_body(error))
        except MoorageError as error:
            await self._finish(op.id, FAILED, error_body(error))
        except asyncio.CancelledError:
            # Server shutdown: leave the row InProgress so the work resumes on the next start.
            raise
        except Exception:
            correlation_id = str(uuid.uuid4())
            log.exception("operation failed", operation=op.id, kind=op.kind, correlation_id=correlation_id)
            internal = Internal(
                f"The operation failed with an internal error. Correlation id: {correlation_id}.",
                correlation_id=correlation_id,
            )
            await self._finish(op.id, FAILED, error_body(internal))
        else:
            await self._finish(op.id, SUCCEEDED, None)

    async def _finish(self, op_id: str, status: str, error: dict[str, Any] | None) -> None:
        async with self._store.begin() as conn:
            await conn.execute(
                operations.update()
                .where(operations.c.id == op_id)
                .values(status=status, error=error, end_time=self._clock.now())
            )

    async def get(self, subscription_id: str, op_id: str) -> Operation:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(operations).where(
                        operations.c.id == op_id.lower(),
                        operations.c.subscription_id == subscription_id.lower(),
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"The operation '{op_id}' could not be found.", code="OperationNotFound")
        return Operation(
            id=row.id,
            kind=row.kind,
            subscription_id=row.subscription_id,
            namespace=row.namespace,
            location=row.location,
            resource_id=row.resource_id,
            status=row.status,
            error=row.error,
            params=row.params or {},
            start_time=row.start_time,
            end_time=row.end_time,
        )

    async def wait(self, subscription_id: str, op_id: str) -> Operation:
        """Block until the operation is terminal (used by in-process callers and tests)."""
        task = self._tasks.get(op_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.get(subscription_id, op_id)

    async def resume(self) -> int:
        """Restart every operation left InProgress by a previous process."""
        async with self._store.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(operations.c.id, operations.c.subscription_id).where(
                        operations.c.status == IN_PROGRESS
                    )
                )
            )
        for row in rows:
            op = await self.get(row.subscription_id, row.id)
            if op.kind in self._runners:
                self._spawn(op)
            else:
                internal = Internal(
                    "The operation was interrupted by a server restart.", correlation_id=op.id
                )
                await self._finish(op.id, FAILED, error_body(internal))
        return len(rows)

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
