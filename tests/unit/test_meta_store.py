"""The metadata store's migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.meta import MetaStore, Migration


def _create(conn: Connection) -> None:
    conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))


async def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    steps = [Migration("c", 1, "create", _create)]
    store = await MetaStore.open(url)
    assert [m.version for m in await store.migrate(steps)] == [1]
    await store.close()
    reopened = await MetaStore.open(url)
    assert await reopened.migrate(steps) == []
    async with reopened.connect() as conn:
        mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
    await reopened.close()
    assert mode == "wal"


_things = sa.Table("things", sa.MetaData(), sa.Column("x", sa.Integer, primary_key=True))


def _create_things(conn: Connection) -> None:
    _things.create(conn)


@pytest.mark.parametrize("database", ["file", "memory"])
async def test_read_and_write_units(tmp_path: Path, database: str) -> None:
    """write() commits a unit or, when it raises, none of it; read() sees every commit. On a
    SQLite file they run on the synchronous engine; in memory on the async one (run_sync)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}" if database == "file" else "sqlite+aiosqlite://"
    store = await MetaStore.open(url)
    try:
        await store.migrate([Migration("things", 1, "create", _create_things)])

        def count(conn: Connection) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_things)).scalar_one())

        assert (
            await store.write(lambda conn: conn.execute(_things.insert(), [{"x": 1}, {"x": 2}]).rowcount) == 2
        )
        assert await store.read(count) == 2

        def insert_then_fail(conn: Connection) -> None:
            conn.execute(_things.insert(), {"x": 3})
            raise LookupError("changed my mind")

        with pytest.raises(LookupError):
            await store.write(insert_then_fail)
        assert await store.read(count) == 2
        # The async engine sees the same rows.
        async with store.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(_things))).scalar_one() == 2
        await store.write(lambda conn: conn.execute(_things.insert(), {"x": 4}))
        assert await store.read(count) == 3
    finally:
        await store.close()
