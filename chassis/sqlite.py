"""SQLite, the embedded default store: one connection on its own thread, WAL, and the outbox table."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from chassis.outbox import OutboxEvent, OutboxSource

__all__ = [
    "SqliteDb",
    "SqliteOutbox",
    "SqliteStore",
    "add_to_outbox",
    "insert_document",
    "keyset_page_sql",
    "select_doc",
]

T = TypeVar("T")

_OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    order_id TEXT NOT NULL DEFAULT ''
)
"""


class SqliteDb:
    """A durable SQLite file used from asyncio.

    Every call runs a whole function on one dedicated thread, so a transaction is never
    interleaved with another coroutine's statements and costs one thread hop.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self._path = path
        self._schema = schema
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a process crash loses nothing committed; only a power cut may lose the last commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(self._schema + _OUTBOX_DDL)
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside BEGIN IMMEDIATE … COMMIT (ROLLBACK if it raises)."""
        return await self.run(lambda conn: self._in_transaction(conn, fn))

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return fn(self._conn)

    @staticmethod
    def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)


def add_to_outbox(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> None:
    """Insert events inside the caller's transaction."""
    conn.executemany(
        "INSERT OR IGNORE INTO outbox (event_id, subject, event_type, payload, order_id) VALUES (?, ?, ?, ?, ?)",
        [(e.event_id, e.subject, e.event_type, e.payload, e.order_id) for e in events],
    )


class SqliteOutbox:
    """The relay's view of the outbox table."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT event_id, subject, event_type, payload, order_id FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [OutboxEvent(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        ids = [(e.event_id,) for e in events]
        await self._db.transaction(lambda c: c.executemany("DELETE FROM outbox WHERE event_id = ?", ids))


def keyset_page_sql(
    table: str, id_column: str, filters: dict[str, str], after: tuple[str, str] | None, limit: int
) -> tuple[str, list[object]]:
    """SELECT doc … newest first (create_time, id), with equality filters (empty values ignored) and a cursor."""
    where: list[str] = []
    args: list[object] = []
    for column, value in filters.items():
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if after is not None:
        where.append(f"(create_time, {id_column}) < (?, ?)")
        args.extend(after)
    sql = f"SELECT doc FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY create_time DESC, {id_column} DESC LIMIT ?"
    return sql, [*args, limit]


def insert_document(
    conn: sqlite3.Connection, table: str, columns: dict[str, object], events: Sequence[OutboxEvent]
) -> bool:
    """Insert a row (its ``doc`` column among ``columns``) and its events; False if a unique key exists already."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    try:
        conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(columns.values()))
    except sqlite3.IntegrityError:
        return False
    add_to_outbox(conn, events)
    return True


def select_doc(conn: sqlite3.Connection, table: str, column: str, value: str) -> str | None:
    """The ``doc`` of the row whose ``column`` equals ``value``."""
    row = conn.execute(f"SELECT doc FROM {table} WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else str(row[0])


class SqliteStore:
    """Base of the SQLite adapters: one database file, its schema, and the outbox the relay reads."""

    def __init__(self, path: Path, schema: str) -> None:
        self._db = SqliteDb(path, schema)
        self.outbox: OutboxSource = SqliteOutbox(self._db)

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()
