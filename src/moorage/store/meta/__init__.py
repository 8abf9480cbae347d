"""Metadata store: SQLAlchemy Core over an async engine (SQLite with WAL by default).

Each component declares its own tables and an ordered list of :class:`Migration` steps; the
store records ``(component, version)`` pairs so components evolve independently and a restart
never re-runs a step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from moorage.core.errors import Unavailable


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


class MetaStore:
    """The metadata database. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

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
        await self.engine.dispose()
