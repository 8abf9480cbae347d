"""The metadata store's migrations."""

from __future__ import annotations

from pathlib import Path

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
