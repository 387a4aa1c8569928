"""Where orders live: the store Protocol and its SQLite and MongoDB adapters (outbox included)."""

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
from order_svc.domain import LineItem, Order, OrderState, RefundState, Step, StepActor, StepKind

__all__ = ["MongoOrderStore", "OrderStore", "SqliteOrderStore"]


class OrderStore(Protocol):
    """Persistence of orders and of the events their changes owe (written atomically together)."""

    outbox: OutboxSource

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, order: Order, events: Sequence[OutboxEvent]) -> tuple[Order, bool]:
        """Insert the order with its events; if its id exists, return the existing order and False."""
        ...

    async def get(self, order_id: str) -> Order | None: ...

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Order]:
        """Orders newest first (by create time, then id), optionally of one customer, after a cursor."""
        ...

    async def save(self, order: Order, expected_version: int, events: Sequence[OutboxEvent]) -> bool:
        """Replace the order if it is still at ``expected_version``, with its events; False if it moved."""
        ...


def _to_doc(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "line_items": [
            {"sku": i.sku, "quantity": i.quantity, "unit_price": i.unit_price.as_dict()} for i in order.line_items
        ],
        "total": order.total.as_dict(),
        "state": order.state.value,
        "payment_method": order.payment_method,
        "create_time": format_time(order.create_time),
        "update_time": format_time(order.update_time),
        "cancel_reason": order.cancel_reason,
        "payment_id": order.payment_id,
        "refund_state": order.refund_state.value,
        "cancelled_by": order.cancelled_by.value if order.cancelled_by else "",
        "timeline": [
            {"kind": t.kind.value, "time": format_time(t.time), "actor": t.actor.value, "detail": t.detail}
            for t in order.timeline
        ],
        "version": order.version,
        "fingerprint": order.fingerprint,
    }


def _from_doc(doc: dict[str, Any]) -> Order:
    return Order(
        order_id=doc["order_id"],
        customer_id=doc["customer_id"],
        line_items=tuple(
            LineItem(i["sku"], int(i["quantity"]), Money.from_dict(i["unit_price"])) for i in doc["line_items"]
        ),
        total=Money.from_dict(doc["total"]),
        state=OrderState(doc["state"]),
        payment_method=doc["payment_method"],
        create_time=parse_time(doc["create_time"]),
        update_time=parse_time(doc["update_time"]),
        cancel_reason=doc["cancel_reason"],
        payment_id=doc["payment_id"],
        refund_state=RefundState(
            doc.get("refund_state") or (RefundState.PENDING if doc.get("refund_due") else RefundState.NONE)
        ),
        cancelled_by=StepActor(doc["cancelled_by"]) if doc.get("cancelled_by") else None,
        timeline=tuple(
            Step(StepKind(t["kind"]), parse_time(t["time"]), StepActor(t["actor"]), t["detail"])
            for t in doc["timeline"]
        )
        if "timeline" in doc  # orders saved before timelines existed start theirs at the placement
        else (Step(StepKind.PLACED, parse_time(doc["create_time"]), StepActor.CUSTOMER),),
        version=int(doc["version"]),
        fingerprint=doc["fingerprint"],
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    create_time TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, create_time DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_by_time ON orders (create_time DESC, order_id DESC);
"""


class SqliteOrderStore(SqliteStore):
    """Orders in a SQLite file; the outbox is a table written in the same transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    async def create(self, order: Order, events: Sequence[OutboxEvent]) -> tuple[Order, bool]:
        doc = _to_doc(order)
        columns = {
            "order_id": order.order_id,
            "customer_id": order.customer_id,
            "create_time": doc["create_time"],
            "version": order.version,
            "doc": json.dumps(doc),
        }

        def insert(conn: sqlite3.Connection) -> tuple[Order, bool]:
            if insert_document(conn, "orders", columns, events):
                return order, True
            return _from_doc(json.loads(select_doc(conn, "orders", "order_id", order.order_id) or "")), False

        return await self._db.transaction(insert)

    async def get(self, order_id: str) -> Order | None:
        row = await self._db.run(
            lambda c: c.execute("SELECT doc FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        )
        return None if row is None else _from_doc(json.loads(row[0]))

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Order]:
        sql, args = keyset_page_sql("orders", "order_id", {"customer_id": customer_id}, after, limit)
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [_from_doc(json.loads(r[0])) for r in rows]

    async def save(self, order: Order, expected_version: int, events: Sequence[OutboxEvent]) -> bool:
        doc = json.dumps(_to_doc(order))

        def update(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE orders SET doc = ?, version = ? WHERE order_id = ? AND version = ?",
                (doc, order.version, order.order_id, expected_version),
            )
            if cursor.rowcount != 1:
                return False
            add_to_outbox(conn, events)
            return True

        return await self._db.transaction(update)


class MongoOrderStore:
    """Orders in MongoDB; pending events live inside the changed order document (one atomic write)."""

    def __init__(self, database: Any) -> None:
        self._orders = database["orders"]
        self.outbox: OutboxSource = MongoOutbox(self._orders)

    async def open(self) -> None:
        await self._orders.create_index(
            [("customer_id", ASCENDING), ("create_time", DESCENDING), ("_id", DESCENDING)], name="by_customer"
        )
        await self._orders.create_index([("create_time", DESCENDING), ("_id", DESCENDING)], name="by_time")
        await self._orders.create_index([("outbox.event_id", ASCENDING)], name="pending_events", sparse=True)

    async def close(self) -> None:
        return None

    async def create(self, order: Order, events: Sequence[OutboxEvent]) -> tuple[Order, bool]:
        try:
            await self._orders.insert_one({"_id": order.order_id, **_to_doc(order), "outbox": outbox_entries(events)})
        except DuplicateKeyError:
            existing = await self._orders.find_one({"_id": order.order_id})
            return _from_doc(existing), False
        return order, True

    async def get(self, order_id: str) -> Order | None:
        doc = await self._orders.find_one({"_id": order_id})
        return None if doc is None else _from_doc(doc)

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Order]:
        return [_from_doc(d) for d in await keyset_page(self._orders, {"customer_id": customer_id}, after, limit)]

    async def save(self, order: Order, expected_version: int, events: Sequence[OutboxEvent]) -> bool:
        result = await self._orders.find_one_and_update(
            {"_id": order.order_id, "version": expected_version},
            {"$set": _to_doc(order), "$push": {"outbox": {"$each": outbox_entries(events)}}},
            return_document=ReturnDocument.AFTER,
        )
        return result is not None
