"""Metadata store: SQLAlchemy Core over an async engine (SQLite with WAL by default).

Each component declares its own tables and an ordered list of :class:`Migration` steps; the
store records ``(component, version)`` pairs so components evolve independently and a restart
never re-runs a step.

Hot paths use :meth:`MetaStore.read` and :meth:`MetaStore.write`, which take a unit of work on a
synchronous :class:`~sqlalchemy.engine.Connection`. Through aiosqlite every statement costs
several thread hops (~0.4-0.6 ms of CPU); on a SQLite file these run instead on a synchronous
engine over the same file: a read inline on the calling thread (an indexed read is tens of µs,
less than one thread hop, and WAL readers never wait for writers), a write as one hop to the
store's writer thread, in one ``BEGIN IMMEDIATE`` transaction. On other databases both fall back
to the async engine (``run_sync``), with the same semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from moorage.core.errors import Unavailable

_T = TypeVar("_T")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Migration:
    """One schema step of one component. ``apply`` runs inside the migration transaction."""

    component: str
    version: int
    description: str
    apply: Callable[[Connection], None]


_meta = sa.MetaData()
_migrations_table = sa.Table(
    "schema_migrations",
    _meta,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers proceed during a write; NORMAL sync is durable at checkpoint in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_file(engine: AsyncEngine) -> str | None:
    """The database file of a SQLite engine, or ``None`` (another database, or in memory)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or "mode=memory" in database:
        return None
    return database


class MetaStore:
    """The metadata database. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # The synchronous engine over the same SQLite file, for read() and write().
        self._sync: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        # read() keeps one connection per calling thread (in practice: the event loop's), so a
        # read costs no pool checkout and return.
        self._local = threading.local()
        self._readers: list[Connection] = []
        self._readers_lock = threading.Lock()
        path = _sqlite_file(engine)
        if path is not None:
            self._sync = sa.create_engine(sa.engine.URL.create("sqlite", database=path))
            event.listen(self._sync, "connect", _sqlite_pragmas)
            # One writer thread: SQLite takes one writer at a time anyway, and a dedicated thread
            # never competes with blob I/O for the default executor.
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meta-writer")

    @classmethod
    async def open(cls, url: str) -> MetaStore:
        """Create the engine (and the SQLite file's directory)."""
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    async def read(self, work: Callable[[Connection], _T]) -> _T:
        """Run a short read-only unit of work (a few indexed statements) and return its result.

        On a SQLite file it runs inline, on the calling thread, without a transaction of its own:
        each statement sees everything committed before it started. ``work`` must not write.
        """
        if self._sync is None:
            async with self.connect() as aconn:
                return await aconn.run_sync(work)
        conn: Connection | None = getattr(self._local, "reader", None)
        if conn is None or conn.closed:
            conn = self._sync.connect()
            self._local.reader = conn
            with self._readers_lock:
                self._readers.append(conn)
        try:
            return work(conn)
        except sa.exc.OperationalError as exc:
            raise Unavailable("The metadata store is busy; retry the request.") from exc
        finally:
            # Ends SQLAlchemy's (driver-level empty) transaction; SQLite itself ran each SELECT
            # on its own, so the next read sees every later commit.
            conn.rollback()

    async def write(self, work: Callable[[Connection], _T]) -> _T:
        """Run a unit of work in one transaction (committed if it returns, rolled back if it
        raises) and return its result. On a SQLite file: one hop to the writer thread, where the
        transaction starts with ``BEGIN IMMEDIATE``, so what ``work`` reads cannot change before
        it writes."""
        if self._sync is None or self._writer is None:
            async with self.begin() as conn:
                return await conn.run_sync(work)
        done = asyncio.get_running_loop().run_in_executor(self._writer, self._write_now, work)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The transaction runs to its end in the writer thread anyway: wait for it, so that
            # the caller's clean-up (and the locks it releases) come after its outcome.
            with contextlib.suppress(BaseException):
                await done
            raise

    def _write_now(self, work: Callable[[Connection], _T]) -> _T:
        assert self._sync is not None  # noqa: S101 - only called when there is a sync engine
        try:
            with self._sync.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
                return result
        except sa.exc.OperationalError as exc:
            raise Unavailable("The metadata store is busy; retry the request.") from exc

    async def migrate(self, migrations: Sequence[Migration]) -> list[Migration]:
        """Apply every step not yet recorded, in (component, version) order; return those applied."""
        applied: list[Migration] = []
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: _migrations_table.create(c, checkfirst=True))
            rows = await conn.execute(sa.select(_migrations_table.c.component, _migrations_table.c.version))
            done = {(r.component, r.version) for r in rows}
            for step in sorted(migrations, key=lambda m: (m.component, m.version)):
                if (step.component, step.version) in done:
                    continue
                await conn.run_sync(step.apply)
                await conn.execute(
                    _migrations_table.insert().values(
                        component=step.component, version=step.version, description=step.description
                    )
                )
                applied.append(step)
        return applied

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise Unavailable("The metadata store is busy; retry the request.") from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads."""
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        if self._sync is not None:
            self._sync.dispose()
        await self.engine.dispose()
