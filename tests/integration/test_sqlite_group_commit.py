"""SqliteDb's group commit: concurrent transactions share COMMITs, yet each stays atomic on its own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from chassis.sqlite import SqliteDb

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDb]:
    database = SqliteDb(tmp_path / "g.sqlite3", SCHEMA)
    await database.open()
    yield database
    await database.close()


def insert(k: str, v: int, *, fail_after: bool = False) -> Callable[[sqlite3.Connection], str]:
    def fn(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"{k}-twin", v))
        if fail_after:
            raise ValueError(f"{k} fails after writing")
        return k

    return fn


async def rows(db: SqliteDb) -> dict[str, int]:
    found = await db.run(lambda c: c.execute("SELECT k, v FROM t").fetchall())
    return {str(r[0]): int(r[1]) for r in found}


async def test_concurrent_transactions_share_commits(db: SqliteDb) -> None:
    outcomes = await asyncio.gather(*(db.transaction(insert(f"k{i}", i)) for i in range(200)))
    assert outcomes == [f"k{i}" for i in range(200)]
    assert len(await rows(db)) == 400
    assert db.transactions == 200
    assert db.commits < 20, "concurrent transactions should share commits"


async def test_a_transaction_that_raises_undoes_only_its_own_writes(db: SqliteDb) -> None:
    calls = [db.transaction(insert(f"k{i}", i, fail_after=i % 10 == 3)) for i in range(200)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert [i for i, o in enumerate(outcomes) if isinstance(o, ValueError)] == [i for i in range(200) if i % 10 == 3]
    assert [o for o in outcomes if isinstance(o, str)] == [f"k{i}" for i in range(200) if i % 10 != 3]
    stored = await rows(db)
    for i in range(200):
        present = i % 10 != 3
        assert (f"k{i}" in stored) is present, i
        assert (f"k{i}-twin" in stored) is present, i
    assert db.transactions == 180


async def test_a_constraint_violation_in_a_group_fails_that_call_only(db: SqliteDb) -> None:
    await db.transaction(insert("taken", 1))
    outcomes = await asyncio.gather(
        db.transaction(insert("a", 1)),
        db.transaction(insert("taken", 2)),
        db.transaction(insert("b", 1)),
        return_exceptions=True,
    )
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert outcomes[2] == "b"
    assert await rows(db) == {"taken": 1, "taken-twin": 1, "a": 1, "a-twin": 1, "b": 1, "b-twin": 1}


async def test_what_was_committed_survives_a_reopen_and_calls_after_close_fail(tmp_path: Path) -> None:
    first = SqliteDb(tmp_path / "r.sqlite3", SCHEMA)
    await first.open()
    await first.transaction(insert("x", 1))
    await first.close()
    with pytest.raises(RuntimeError, match="not open"):
        await first.run(lambda c: c.execute("SELECT 1").fetchall())
    again = SqliteDb(tmp_path / "r.sqlite3", SCHEMA)
    await again.open()
    try:
        assert await rows(again) == {"x": 1, "x-twin": 1}
    finally:
        await again.close()
