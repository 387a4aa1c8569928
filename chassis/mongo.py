"""MongoDB (PyMongo's native async API): the client, and the outbox kept inside changed documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient

from chassis.outbox import OutboxEvent

__all__ = ["MongoOutbox", "connect", "keyset_page", "outbox_entries"]

Document = dict[str, Any]


def connect(uri: str, app_name: str) -> AsyncMongoClient[Document]:
    """A client; it connects lazily on first use (nothing connects at import or construction)."""
    return AsyncMongoClient(uri, appname=app_name, tz_aware=True, serverSelectionTimeoutMS=10_000)


def outbox_entries(events: Sequence[OutboxEvent]) -> list[Document]:
    """Events as they are embedded in the document whose change caused them (one atomic write)."""
    return [
        {
            "event_id": e.event_id,
            "subject": e.subject,
            "event_type": e.event_type,
            "payload": e.payload,
            "aggregate_id": e.aggregate_id,
        }
        for e in events
    ]


class MongoOutbox:
    """The relay's view of the events pending inside the documents of one collection."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        events: list[OutboxEvent] = []
        cursor = self._collection.find({"outbox.event_id": {"$exists": True}}, {"outbox": 1}).limit(limit)
        async for doc in cursor:
            for entry in doc["outbox"]:
                events.append(
                    OutboxEvent(
                        event_id=entry["event_id"],
                        subject=entry["subject"],
                        event_type=entry["event_type"],
                        payload=bytes(entry["payload"]),
                        aggregate_id=entry.get("aggregate_id", entry.get("order_id", "")),
                        ref=str(doc["_id"]),
                    )
                )
        return events

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        by_doc: dict[str, list[str]] = {}
        for e in events:
            by_doc.setdefault(e.ref, []).append(e.event_id)
        for doc_id, event_ids in by_doc.items():
            await self._collection.update_one({"_id": doc_id}, {"$pull": {"outbox": {"event_id": {"$in": event_ids}}}})


async def keyset_page(
    collection: Any, filters: dict[str, str], after: tuple[str, str] | None, limit: int
) -> list[Document]:
    """Documents newest first (create_time, _id), with equality filters (empty values ignored) and a cursor."""
    query: dict[str, Any] = {k: v for k, v in filters.items() if v}
    if after is not None:
        query["$or"] = [
            {"create_time": {"$lt": after[0]}},
            {"create_time": after[0], "_id": {"$lt": after[1]}},
        ]
    cursor = collection.find(query).sort([("create_time", -1), ("_id", -1)]).limit(limit)
    return [doc async for doc in cursor]
