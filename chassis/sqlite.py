"""SQLite, the embedded default store: one connection on its own thread, WAL, group commit, and the outbox table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
    aggregate_id TEXT NOT NULL DEFAULT '',
    trace_context TEXT,
    enqueued_at REAL
)
"""


def _migrate_outbox(conn: sqlite3.Connection) -> None:
    """Bring an outbox table written by an older version up to date.

    Before the outbox was domain-neutral its aggregate column was ``order_id``; before tracing and
    metrics it had no ``trace_context`` (JSON of the W3C headers) and no ``enqueued_at`` (Unix time
    of the commit). Rows from then keep NULL there: no trace context, and no age.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    if "order_id" in columns and "aggregate_id" not in columns:
        conn.execute("ALTER TABLE outbox RENAME COLUMN order_id TO aggregate_id")
    if "trace_context" not in columns:
        conn.execute("ALTER TABLE outbox ADD COLUMN trace_context TEXT")
    if "enqueued_at" not in columns:
        conn.execute("ALTER TABLE outbox ADD COLUMN enqueued_at REAL")


class _Call:
    """One queued call: ``fn(conn)``, whether it is a transaction, and where its outcome goes."""

    __slots__ = ("fn", "future", "loop", "transactional")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        transactional: bool,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.transactional = transactional
        self.loop = loop
        self.future = future


_Outcome = tuple["asyncio.Future[Any]", bool, Any]


def _settle(outcomes: list[_Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class SqliteDb:
    """A durable SQLite file used from asyncio through one dedicated thread (group commit).

    Every call runs a whole function on the database thread, so a transaction is never
    interleaved with another coroutine's statements. The thread takes every call waiting in
    its queue at once: consecutive transactions share one ``BEGIN IMMEDIATE … COMMIT``, and none
    is reported done before that COMMIT succeeded (if it fails, every one of them fails). If
    one of them raises, the shared transaction is rolled back and each runs again in its own,
    so one that fails undoes only its own writes.
    Plain calls (reads) run between groups, so they only ever see committed data. The calls of
    one loop iteration reach the thread in one hand-over, and the outcomes of one round go
    back to the event loop in a single wake-up.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self._path = path
        self._schema = schema
        self._queue: queue.SimpleQueue[list[_Call] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Call] = []
        self._handover_scheduled = False
        #: COMMITs run and transactions they carried: how well commits group.
        self.commits = 0
        self.transactions = 0

    async def open(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"sqlite-{self._path.stem}", daemon=True)
            self._thread.start()
        await self._submit(self._open, transactional=False)

    def _open(self, _conn: sqlite3.Connection | None) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a process crash loses nothing committed; only a power cut may lose the last commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(self._schema + _OUTBOX_DDL)
        _migrate_outbox(conn)
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread, outside any transaction."""
        return await self._submit(fn, transactional=False)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` atomically (ROLLBACK of its writes if it raises); done once committed."""
        return await self._submit(fn, transactional=True)

    def _submit(self, fn: Callable[[Any], T], *, transactional: bool) -> asyncio.Future[T]:
        if self._thread is None:
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Call(fn, transactional, loop, future))
        if not self._handover_scheduled:  # everything submitted in this loop iteration goes over in one wake-up
            self._handover_scheduled = True
            loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        self._handover_scheduled = False
        calls, self._pending = self._pending, []
        if calls:
            self._queue.put(calls)

    def _work(self) -> None:
        """The database thread: take what is waiting, run it, hand the outcomes back; until the sentinel."""
        running = True
        while running:
            first = self._queue.get()
            if first is None:
                break
            calls = first
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    running = False
                    break
                calls.extend(more)
            outcomes: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            index = 0
            while index < len(calls):
                end = index + 1
                if calls[index].transactional:
                    while end < len(calls) and calls[end].transactional:
                        end += 1
                    results = self._run_group(calls[index:end])
                else:
                    results = [self._run_plain(calls[index])]
                for call, (ok, value) in zip(calls[index:end], results, strict=True):
                    outcomes.setdefault(call.loop, []).append((call.future, ok, value))
                index = end
            for loop, settled in outcomes.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    continue
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _run_plain(self, call: _Call) -> tuple[bool, Any]:
        if self._conn is None and call.fn != self._open:
            return False, RuntimeError("database is not open")
        try:
            return True, call.fn(self._conn)  # type: ignore[arg-type]  # only _open takes None
        except Exception as error:
            return False, error

    def _run_group(self, group: list[_Call]) -> list[tuple[bool, Any]]:
        """One transaction for the whole group; if one call raises, undo all and run each on its own.

        Calls are functions of the connection alone, so running them again after a ROLLBACK
        is safe; a call that raises is rare (expected conflicts are handled inside the calls).
        """
        conn = self._conn
        if conn is None:
            return [(False, RuntimeError("database is not open"))] * len(group)
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for call in group:
                results.append((True, call.fn(conn)))
            conn.execute("COMMIT")
        except Exception as error:
            if conn.in_transaction:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            if len(group) == 1 or len(results) == len(group):  # its own failure, or the COMMIT failed
                return [(False, error)] * len(group)
            return [outcome for call in group for outcome in self._run_group([call])]
        self.commits += 1
        self.transactions += len(group)
        return results

    async def close(self) -> None:
        """Finish what is queued, close the connection and stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._hand_over()
        self._queue.put(None)
        await asyncio.to_thread(thread.join)


def add_to_outbox(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> None:
    """Insert events inside the caller's transaction, each with its trace context (if any) and the time."""
    if not events:
        return
    now = time.time()
    conn.executemany(
        "INSERT OR IGNORE INTO outbox"
        " (event_id, subject, event_type, payload, aggregate_id, trace_context, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.event_id,
                e.subject,
                e.event_type,
                e.payload,
                e.aggregate_id,
                None if e.trace_context is None else json.dumps(dict(e.trace_context)),
                now,
            )
            for e in events
        ],
    )


class SqliteOutbox:
    """The relay's view of the outbox table."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT event_id, subject, event_type, payload, aggregate_id, trace_context"
                " FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            OutboxEvent(r[0], r[1], r[2], bytes(r[3]), r[4], trace_context=json.loads(r[5]) if r[5] else None)
            for r in rows
        ]

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        ids = [(e.event_id,) for e in events]
        await self._db.transaction(lambda c: c.executemany("DELETE FROM outbox WHERE event_id = ?", ids))

    async def backlog(self) -> tuple[int, float | None]:
        """Count of the rows, and the time of the oldest row that has one (by its primary key: no scan)."""

        def query(conn: sqlite3.Connection) -> tuple[int, float | None]:
            count = int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            if count == 0:
                return 0, None
            row = conn.execute(
                "SELECT enqueued_at FROM outbox WHERE enqueued_at IS NOT NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            return count, None if row is None else float(row[0])

        return await self._db.run(query)


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
