"""MongoDB (PyMongo's native async API): the client, and the outbox kept inside changed documents."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from chassis.outbox import OutboxEvent

__all__ = [
    "MongoOutbox",
    "MongoUnavailable",
    "check_reachable",
    "connect",
    "keyset_page",
    "outbox_entries",
    "redact_uri",
]

Document = dict[str, Any]


def connect(uri: str, app_name: str, server_selection_timeout_ms: int = 5000) -> AsyncMongoClient[Document]:
    """A client; it connects lazily on first use (nothing connects at import or construction).

    An operation fails after ``server_selection_timeout_ms`` without a reachable server.
    """
    return AsyncMongoClient(uri, appname=app_name, tz_aware=True, serverSelectionTimeoutMS=server_selection_timeout_ms)


class MongoUnavailable(Exception):
    """MongoDB cannot be used; the message is one line that names the URI without its password."""


def _split_userinfo(uri: str) -> tuple[str, str, str | None, str]:
    """``(scheme://, user, password or None, @hosts...)``; no ``@``: ``("", "", None, uri)``.

    The user info ends at the last ``@`` (hosts, database and usual options have none), so a
    password with an unescaped ``@`` or ``:`` is still wholly in the password part.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "", uri
    at = rest.rfind("@")
    if at < 0:
        return "", "", None, uri
    user, colon, password = rest[:at].partition(":")
    return scheme + sep, user, password if colon else None, rest[at:]


def redact_uri(uri: str) -> str:
    """The URI with its password (and an AWS session token in its options) replaced by ``***``."""
    prefix, user, password, rest = _split_userinfo(uri)
    shown = uri if password is None else f"{prefix}{user}:***{rest}"
    return re.sub(r"(AWS_SESSION_TOKEN(?::|%3A))[^,&]*", r"\1***", shown, flags=re.IGNORECASE)


def _short_reason(error: PyMongoError, uri: str) -> str:
    """The first, useful part of a PyMongo error (no topology dump, no timeouts list, no password)."""
    text = str(error).split(", Timeout: ", 1)[0]
    text = re.sub(r" \(configured timeouts: [^)]*\)", "", text).strip()
    reason = (text.splitlines()[0] if text else type(error).__name__).replace(uri, redact_uri(uri))
    password = _split_userinfo(uri)[2]
    return reason.replace(password, "***") if password and len(password) >= 4 else reason


async def check_reachable(uri: str, app_name: str, server_selection_timeout_ms: int) -> None:
    """Ping MongoDB once with a short-lived client; ``MongoUnavailable`` if it cannot be used.

    Unreachable within ``server_selection_timeout_ms``: "cannot reach MongoDB at <uri> within N s:
    <reason>"; reachable but refusing (bad URI, failed authentication): "cannot use MongoDB at ...".
    """
    shown = redact_uri(uri)
    client: AsyncMongoClient[Document] | None = None
    try:
        client = connect(uri, app_name, server_selection_timeout_ms)
        await client.admin.command("ping")
    except ConnectionFailure as error:
        seconds = server_selection_timeout_ms / 1000
        reason = _short_reason(error, uri)
        raise MongoUnavailable(f"cannot reach MongoDB at {shown} within {seconds:.1f} s: {reason}") from None
    except PyMongoError as error:
        raise MongoUnavailable(f"cannot use MongoDB at {shown}: {_short_reason(error, uri)}") from None
    finally:
        if client is not None:
            await client.close()


def outbox_entries(events: Sequence[OutboxEvent]) -> list[Document]:
    """Events as they are embedded in the document whose change caused them (one atomic write).

    Each entry has the time it was written (``enqueued_at``, Unix time) and, while tracing is on,
    the trace context it was written in (``trace_context``: the W3C headers).
    """
    now = time.time()
    entries: list[Document] = []
    for e in events:
        entry: Document = {
            "event_id": e.event_id,
            "subject": e.subject,
            "event_type": e.event_type,
            "payload": e.payload,
            "aggregate_id": e.aggregate_id,
            "enqueued_at": now,
        }
        if e.trace_context is not None:
            entry["trace_context"] = dict(e.trace_context)
        entries.append(entry)
    return entries


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
                        trace_context=entry.get("trace_context") or None,
                    )
                )
        return events

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        by_doc: dict[str, list[str]] = {}
        for e in events:
            by_doc.setdefault(e.ref, []).append(e.event_id)
        for doc_id, event_ids in by_doc.items():
            await self._collection.update_one({"_id": doc_id}, {"$pull": {"outbox": {"event_id": {"$in": event_ids}}}})

    async def backlog(self) -> tuple[int, float | None]:
        """Entries pending in the documents that have any (the ``pending_events`` index), and the oldest's time.

        Counted by the server in one aggregation; entries written before ``enqueued_at`` existed
        count, but have no age.
        """
        pipeline: list[Document] = [
            {"$match": {"outbox.event_id": {"$exists": True}}},
            {"$project": {"_id": 0, "n": {"$size": "$outbox"}, "oldest": {"$min": "$outbox.enqueued_at"}}},
            {"$group": {"_id": None, "n": {"$sum": "$n"}, "oldest": {"$min": "$oldest"}}},
        ]
        cursor = self._collection.aggregate(pipeline)
        if inspect.isawaitable(cursor):  # PyMongo's async API awaits aggregate(); Motor's returns the cursor
            cursor = await cursor
        async for row in cursor:
            oldest = row.get("oldest")
            return int(row.get("n") or 0), float(oldest) if isinstance(oldest, int | float) else None
        return 0, None


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
