"""Where notifications live: the store Protocol and its SQLite and MongoDB adapters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from chassis.mongo import keyset_page
from chassis.paging import Cursor
from chassis.sqlite import SqliteStore, insert_document, keyset_page_sql
from chassis.timefmt import format_time, parse_time
from notification_svc.domain import Notification, NotificationKind

__all__ = ["MongoNotificationStore", "NotificationStore", "SqliteNotificationStore"]


class NotificationStore(Protocol):
    """Persistence of notifications (one per order and kind) and of their e-mail delivery state."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, notification: Notification) -> bool:
        """Insert; False if this order already has a notification of this kind."""
        ...

    async def page(self, order_id: str, customer_id: str, limit: int, after: Cursor | None) -> list[Notification]:
        """Notifications newest first, filtered by order and/or customer when given, after a cursor."""
        ...

    async def pending_deliveries(self, limit: int) -> list[Notification]:
        """Notifications not yet delivered by e-mail, oldest first."""
        ...

    async def mark_delivered(self, notification_id: str) -> None: ...


def _to_doc(n: Notification) -> dict[str, Any]:
    return {
        "notification_id": n.notification_id,
        "order_id": n.order_id,
        "customer_id": n.customer_id,
        "kind": n.kind.value,
        "message": n.message,
        "event_id": n.event_id,
        "create_time": format_time(n.create_time),
    }


def _from_doc(doc: dict[str, Any]) -> Notification:
    return Notification(
        notification_id=doc["notification_id"],
        order_id=doc["order_id"],
        customer_id=doc["customer_id"],
        kind=NotificationKind(doc["kind"]),
        message=doc["message"],
        event_id=doc["event_id"],
        create_time=parse_time(doc["create_time"]),
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    notification_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    create_time TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    UNIQUE (order_id, kind)
);
CREATE INDEX IF NOT EXISTS notifications_by_customer
    ON notifications (customer_id, create_time DESC, notification_id DESC);
CREATE INDEX IF NOT EXISTS notifications_by_order ON notifications (order_id, create_time DESC, notification_id DESC);
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (create_time DESC, notification_id DESC);
CREATE INDEX IF NOT EXISTS notifications_undelivered ON notifications (create_time) WHERE delivered = 0;
"""


class SqliteNotificationStore(SqliteStore):
    """Notifications in a SQLite file; UNIQUE (order_id, kind) makes a redelivered event a no-op."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    async def add(self, notification: Notification) -> bool:
        doc = _to_doc(notification)
        columns = {
            "notification_id": notification.notification_id,
            "order_id": notification.order_id,
            "customer_id": notification.customer_id,
            "kind": notification.kind.value,
            "create_time": doc["create_time"],
            "doc": json.dumps(doc),
        }
        return await self._db.transaction(lambda conn: insert_document(conn, "notifications", columns, ()))

    async def page(self, order_id: str, customer_id: str, limit: int, after: Cursor | None) -> list[Notification]:
        filters = {"order_id": order_id, "customer_id": customer_id}
        sql, args = keyset_page_sql("notifications", "notification_id", filters, after, limit)
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [_from_doc(json.loads(r[0])) for r in rows]

    async def pending_deliveries(self, limit: int) -> list[Notification]:
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT doc FROM notifications WHERE delivered = 0 ORDER BY create_time LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_from_doc(json.loads(r[0])) for r in rows]

    async def mark_delivered(self, notification_id: str) -> None:
        await self._db.transaction(
            lambda c: c.execute("UPDATE notifications SET delivered = 1 WHERE notification_id = ?", (notification_id,))
        )


class MongoNotificationStore:
    """Notifications in MongoDB; a unique index on (order_id, kind) makes a redelivered event a no-op."""

    def __init__(self, database: Any) -> None:
        self._notifications = database["notifications"]

    async def open(self) -> None:
        await self._notifications.create_index(
            [("order_id", ASCENDING), ("kind", ASCENDING)], name="one_per_outcome", unique=True
        )
        for field in ("customer_id", "order_id"):
            await self._notifications.create_index(
                [(field, ASCENDING), ("create_time", DESCENDING), ("_id", DESCENDING)], name=f"by_{field}"
            )
        await self._notifications.create_index([("create_time", DESCENDING), ("_id", DESCENDING)], name="by_time")
        await self._notifications.create_index(
            [("delivered", ASCENDING), ("create_time", ASCENDING)], name="undelivered"
        )

    async def close(self) -> None:
        return None

    async def add(self, notification: Notification) -> bool:
        try:
            await self._notifications.insert_one(
                {"_id": notification.notification_id, **_to_doc(notification), "delivered": False}
            )
        except DuplicateKeyError:
            return False
        return True

    async def page(self, order_id: str, customer_id: str, limit: int, after: Cursor | None) -> list[Notification]:
        filters = {"order_id": order_id, "customer_id": customer_id}
        return [_from_doc(d) for d in await keyset_page(self._notifications, filters, after, limit)]

    async def pending_deliveries(self, limit: int) -> list[Notification]:
        cursor = self._notifications.find({"delivered": False}).sort([("create_time", ASCENDING)]).limit(limit)
        return [_from_doc(doc) async for doc in cursor]

    async def mark_delivered(self, notification_id: str) -> None:
        await self._notifications.update_one({"_id": notification_id}, {"$set": {"delivered": True}})
