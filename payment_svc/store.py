"""Where payments live: the store Protocol and its SQLite and MongoDB adapters (outbox included)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from chassis.money import Money
from chassis.mongo import MongoOutbox, keyset_page, outbox_entries
from chassis.outbox import OutboxEvent, OutboxSource
from chassis.paging import Cursor
from chassis.sqlite import SqliteStore, add_to_outbox, insert_document, keyset_page_sql, select_doc
from chassis.timefmt import format_time, parse_time
from payment_svc.domain import Payment, PaymentStatus

__all__ = ["MongoPaymentStore", "PaymentStore", "SqlitePaymentStore"]


class PaymentStore(Protocol):
    """Persistence of payments (at most one per order) and of the events they owe."""

    outbox: OutboxSource

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, payment: Payment, events: Sequence[OutboxEvent]) -> tuple[Payment, bool]:
        """Insert with its events; if the order already has a payment, return that one and False."""
        ...

    async def get_by_order(self, order_id: str) -> Payment | None: ...

    async def update(self, payment: Payment, expected: PaymentStatus, events: Sequence[OutboxEvent]) -> bool:
        """Replace the order's payment if it is still in status ``expected``, with its events; False if it moved."""
        ...

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Payment]:
        """Payments newest first (create time, then id), optionally of one customer, after a cursor."""
        ...


def _to_doc(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "order_id": payment.order_id,
        "customer_id": payment.customer_id,
        "amount": payment.amount.as_dict(),
        "payment_method": payment.payment_method,
        "status": payment.status.value,
        "create_time": format_time(payment.create_time),
        "decline_code": payment.decline_code,
        "decline_reason": payment.decline_reason,
        "refund_time": format_time(payment.refund_time) if payment.refund_time else "",
    }


def _from_doc(doc: dict[str, Any]) -> Payment:
    return Payment(
        payment_id=doc["payment_id"],
        order_id=doc["order_id"],
        customer_id=doc["customer_id"],
        amount=Money.from_dict(doc["amount"]),
        payment_method=doc["payment_method"],
        status=PaymentStatus(doc["status"]),
        create_time=parse_time(doc["create_time"]),
        decline_code=doc["decline_code"],
        decline_reason=doc["decline_reason"],
        refund_time=parse_time(doc["refund_time"]) if doc.get("refund_time") else None,
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    create_time TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_customer ON payments (customer_id, create_time DESC, payment_id DESC);
CREATE INDEX IF NOT EXISTS payments_by_time ON payments (create_time DESC, payment_id DESC);
"""


class SqlitePaymentStore(SqliteStore):
    """Payments in a SQLite file; ``order_id`` is UNIQUE, so an order can never be charged twice."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    async def create(self, payment: Payment, events: Sequence[OutboxEvent]) -> tuple[Payment, bool]:
        doc = _to_doc(payment)
        columns = {
            "payment_id": payment.payment_id,
            "order_id": payment.order_id,
            "customer_id": payment.customer_id,
            "create_time": doc["create_time"],
            "doc": json.dumps(doc),
        }

        def insert(conn: sqlite3.Connection) -> tuple[Payment, bool]:
            if insert_document(conn, "payments", columns, events):
                return payment, True
            return _from_doc(json.loads(select_doc(conn, "payments", "order_id", payment.order_id) or "")), False

        return await self._db.transaction(insert)

    async def get_by_order(self, order_id: str) -> Payment | None:
        doc = await self._db.run(lambda c: select_doc(c, "payments", "order_id", order_id))
        return None if doc is None else _from_doc(json.loads(doc))

    async def update(self, payment: Payment, expected: PaymentStatus, events: Sequence[OutboxEvent]) -> bool:
        doc = json.dumps(_to_doc(payment))

        def replace(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE payments SET doc = ? WHERE order_id = ? AND json_extract(doc, '$.status') = ?",
                (doc, payment.order_id, expected.value),
            )
            if cursor.rowcount != 1:
                return False
            add_to_outbox(conn, events)
            return True

        return await self._db.transaction(replace)

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Payment]:
        sql, args = keyset_page_sql("payments", "payment_id", {"customer_id": customer_id}, after, limit)
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [_from_doc(json.loads(r[0])) for r in rows]


class MongoPaymentStore:
    """Payments in MongoDB, one document per payment; a unique index on order_id forbids a second charge."""

    def __init__(self, database: Any) -> None:
        self._payments = database["payments"]
        self.outbox: OutboxSource = MongoOutbox(self._payments)

    async def open(self) -> None:
        await self._payments.create_index([("order_id", ASCENDING)], name="one_per_order", unique=True)
        await self._payments.create_index(
            [("customer_id", ASCENDING), ("create_time", DESCENDING), ("_id", DESCENDING)], name="by_customer"
        )
        await self._payments.create_index([("create_time", DESCENDING), ("_id", DESCENDING)], name="by_time")
        await self._payments.create_index([("outbox.event_id", ASCENDING)], name="pending_events", sparse=True)

    async def close(self) -> None:
        return None

    async def create(self, payment: Payment, events: Sequence[OutboxEvent]) -> tuple[Payment, bool]:
        try:
            await self._payments.insert_one(
                {"_id": payment.payment_id, **_to_doc(payment), "outbox": outbox_entries(events)}
            )
        except DuplicateKeyError:
            existing = await self._payments.find_one({"order_id": payment.order_id})
            return _from_doc(existing), False
        return payment, True

    async def get_by_order(self, order_id: str) -> Payment | None:
        doc = await self._payments.find_one({"order_id": order_id})
        return None if doc is None else _from_doc(doc)

    async def update(self, payment: Payment, expected: PaymentStatus, events: Sequence[OutboxEvent]) -> bool:
        result = await self._payments.find_one_and_update(
            {"order_id": payment.order_id, "status": expected.value},
            {"$set": _to_doc(payment), "$push": {"outbox": {"$each": outbox_entries(events)}}},
            return_document=ReturnDocument.AFTER,
        )
        return result is not None

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Payment]:
        return [_from_doc(d) for d in await keyset_page(self._payments, {"customer_id": customer_id}, after, limit)]
