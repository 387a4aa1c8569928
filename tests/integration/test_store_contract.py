"""One contract for every store adapter: SQLite, MongoDB via mongomock-motor, and a real MongoDB if configured."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chassis.money import Money
from chassis.outbox import OutboxEvent
from chassis.timefmt import format_time
from notification_svc.domain import Notification, NotificationKind
from notification_svc.store import MongoNotificationStore, NotificationStore, SqliteNotificationStore
from order_svc.domain import LineItem, Order, OrderState, PaymentOutcome, PaymentResult
from order_svc.store import MongoOrderStore, OrderStore, SqliteOrderStore
from payment_svc.domain import Payment, PaymentStatus
from payment_svc.store import MongoPaymentStore, PaymentStore, SqlitePaymentStore

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
BACKENDS = ["sqlite", "mongomock", "mongodb"]


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    """(kind, handle): a SQLite file path, or a MongoDB database (fake or real)."""
    if request.param == "sqlite":
        yield "sqlite", tmp_path / "store.sqlite3"
    elif request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield "mongo", AsyncMongoMockClient()[f"contract_{uuid.uuid4().hex}"]
    else:
        uri = os.environ.get("MONGODB_URI")
        if not uri:
            pytest.skip("MONGODB_URI is not set: the store contract against a real MongoDB is skipped")
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
        name = f"contract_{uuid.uuid4().hex}"
        try:
            yield "mongo", client[name]
        finally:
            await client.drop_database(name)
            await client.close()


async def _open(database: tuple[str, Any], sqlite: Callable[[Path], Any], mongo: Callable[[Any], Any]) -> Any:
    kind, handle = database
    store = sqlite(handle) if kind == "sqlite" else mongo(handle)
    await store.open()
    return store


@pytest.fixture
async def orders(database: tuple[str, Any]) -> AsyncIterator[OrderStore]:
    store: OrderStore = await _open(database, SqliteOrderStore, MongoOrderStore)
    yield store
    await store.close()


@pytest.fixture
async def payments(database: tuple[str, Any]) -> AsyncIterator[PaymentStore]:
    store: PaymentStore = await _open(database, SqlitePaymentStore, MongoPaymentStore)
    yield store
    await store.close()


@pytest.fixture
async def notifications(database: tuple[str, Any]) -> AsyncIterator[NotificationStore]:
    store: NotificationStore = await _open(database, SqliteNotificationStore, MongoNotificationStore)
    yield store
    await store.close()


def _order(order_id: str, customer: str = "alice", at: datetime = T0) -> Order:
    price = Money.of("USD", 12, 500_000_000)
    return Order(
        order_id=order_id,
        customer_id=customer,
        line_items=(LineItem("SKU-1", 2, price),),
        total=price.times(2),
        state=OrderState.CREATED,
        payment_method="pm_card_visa",
        create_time=at,
        update_time=at,
        fingerprint="f-" + order_id,
    )


def _event(event_id: str, order_id: str) -> OutboxEvent:
    return OutboxEvent(event_id, "orders.created", "orders.v1.OrderCreated", b"\x01\x02" + event_id.encode(), order_id)


async def test_order_store_round_trips_an_order_exactly(orders: OrderStore) -> None:
    order = _order("o-1")
    assert await orders.create(order, [_event("e-1", "o-1")]) == (order, True)
    loaded = await orders.get("o-1")
    assert loaded == order
    assert loaded is not None
    assert loaded.fingerprint == order.fingerprint
    assert loaded.total == Money("USD", 25_000_000_000)
    assert await orders.get("missing") is None


async def test_order_store_create_of_an_existing_id_returns_the_first_order_and_adds_no_events(
    orders: OrderStore,
) -> None:
    first = _order("o-1")
    await orders.create(first, [_event("e-1", "o-1")])
    again, created = await orders.create(_order("o-1", customer="mallory"), [_event("e-2", "o-1")])
    assert (again, created) == (first, False)
    assert [e.event_id for e in await orders.outbox.pending_events(10)] == ["e-1"]


async def test_order_store_save_is_guarded_by_version(orders: OrderStore) -> None:
    order = _order("o-1")
    await orders.create(order, [])
    changed = order.apply_payment(PaymentOutcome("o-1", "p-1", PaymentResult.SUCCEEDED), T0 + timedelta(seconds=1))
    assert changed is not None
    assert await orders.save(changed, expected_version=1, events=[_event("e-2", "o-1")])
    assert not await orders.save(changed, expected_version=1, events=[_event("e-3", "o-1")])
    loaded = await orders.get("o-1")
    assert loaded is not None
    assert (loaded.state, loaded.version, loaded.payment_id) == (OrderState.PAID, 2, "p-1")
    assert [e.event_id for e in await orders.outbox.pending_events(10)] == ["e-2"]


async def test_order_store_pages_newest_first_by_customer_after_a_cursor(orders: OrderStore) -> None:
    for i in range(5):
        await orders.create(_order(f"o-{i}", at=T0 + timedelta(seconds=i)), [])
    await orders.create(_order("x-1", customer="bob", at=T0 + timedelta(seconds=9)), [])
    # Two orders in the same microsecond are ordered by id.
    await orders.create(_order("o-9", at=T0 + timedelta(seconds=4)), [])
    first = await orders.page("alice", 3, None)
    assert [o.order_id for o in first] == ["o-9", "o-4", "o-3"]
    last = first[-1]
    rest = await orders.page("alice", 10, (format_time(last.create_time), last.order_id))
    assert [o.order_id for o in rest] == ["o-2", "o-1", "o-0"]
    assert [o.order_id for o in await orders.page("", 2, None)] == ["x-1", "o-9"]


async def test_outbox_lists_pending_events_and_forgets_published_ones(orders: OrderStore) -> None:
    await orders.create(_order("o-1"), [_event("e-1", "o-1"), _event("e-2", "o-1")])
    await orders.create(_order("o-2"), [_event("e-3", "o-2")])
    pending = await orders.outbox.pending_events(10)
    assert sorted(e.event_id for e in pending) == ["e-1", "e-2", "e-3"]
    by_id = {e.event_id: e for e in pending}
    assert by_id["e-1"].payload == b"\x01\x02e-1"
    assert (by_id["e-3"].subject, by_id["e-3"].event_type, by_id["e-3"].aggregate_id) == (
        "orders.created",
        "orders.v1.OrderCreated",
        "o-2",
    )
    await orders.outbox.mark_published([by_id["e-1"], by_id["e-3"]])
    assert [e.event_id for e in await orders.outbox.pending_events(10)] == ["e-2"]
    await orders.outbox.mark_published([by_id["e-2"]])
    assert await orders.outbox.pending_events(10) == []


def _payment(order_id: str, payment_id: str, at: datetime = T0, customer: str = "alice") -> Payment:
    return Payment(
        payment_id=payment_id,
        order_id=order_id,
        customer_id=customer,
        amount=Money.of("EUR", 7, 10),
        payment_method="pm_card_declined",
        status=PaymentStatus.DECLINED,
        create_time=at,
        decline_code="card_declined",
        decline_reason="Your card was declined.",
    )


async def test_payment_store_keeps_one_payment_per_order(payments: PaymentStore) -> None:
    first = _payment("o-1", "p-1")
    assert await payments.create(first, [_event("e-1", "o-1")]) == (first, True)
    assert await payments.create(_payment("o-1", "p-2"), [_event("e-2", "o-1")]) == (first, False)
    assert await payments.get_by_order("o-1") == first
    assert await payments.get_by_order("o-2") is None
    assert [e.event_id for e in await payments.outbox.pending_events(10)] == ["e-1"]


async def test_payment_store_update_is_guarded_by_status_and_keeps_the_refund(payments: PaymentStore) -> None:
    charged = replace(_payment("o-1", "p-1"), status=PaymentStatus.SUCCEEDED, decline_code="", decline_reason="")
    await payments.create(charged, [])
    refunded = charged.refunded(T0 + timedelta(seconds=5))
    assert await payments.update(refunded, PaymentStatus.SUCCEEDED, [_event("e-r", "o-1")])
    assert not await payments.update(refunded, PaymentStatus.SUCCEEDED, [_event("e-r2", "o-1")]), "moved already"
    assert await payments.get_by_order("o-1") == refunded
    assert [e.event_id for e in await payments.outbox.pending_events(10)] == ["e-r"]


async def test_payment_store_pages_newest_first(payments: PaymentStore) -> None:
    for i in range(4):
        await payments.create(_payment(f"o-{i}", f"p-{i}", T0 + timedelta(seconds=i)), [])
    await payments.create(_payment("o-x", "p-x", T0, customer="bob"), [])
    assert [p.payment_id for p in await payments.page("alice", 10, None)] == ["p-3", "p-2", "p-1", "p-0"]
    assert [p.payment_id for p in await payments.page("", 2, None)] == ["p-3", "p-2"]


def _notification(order_id: str, kind: NotificationKind, at: datetime = T0, customer: str = "alice") -> Notification:
    return Notification(f"n-{order_id}-{kind.value}", order_id, customer, kind, f"about {order_id}", "e-1", at)


async def test_notification_store_records_one_notification_per_order_and_kind(
    notifications: NotificationStore,
) -> None:
    paid = _notification("o-1", NotificationKind.ORDER_PAID)
    assert await notifications.add(paid)
    assert not await notifications.add(paid)
    assert not await notifications.add(
        Notification("n-other-id", "o-1", "alice", NotificationKind.ORDER_PAID, "again", "e-2", T0)
    )
    assert await notifications.add(_notification("o-2", NotificationKind.PAYMENT_FAILED, T0 + timedelta(seconds=1)))
    assert await notifications.add(_notification("o-3", NotificationKind.ORDER_PAID, T0 + timedelta(seconds=2), "bob"))
    assert [n.order_id for n in await notifications.page("", "", 10, None)] == ["o-3", "o-2", "o-1"]
    assert [n.order_id for n in await notifications.page("", "alice", 10, None)] == ["o-2", "o-1"]
    assert await notifications.page("o-1", "", 10, None) == [paid]
    assert await notifications.page("o-1", "bob", 10, None) == []


async def test_notification_store_tracks_what_is_still_to_be_emailed(notifications: NotificationStore) -> None:
    first = _notification("o-1", NotificationKind.ORDER_PAID)
    second = _notification("o-2", NotificationKind.ORDER_PAID, T0 + timedelta(seconds=1))
    await notifications.add(second)
    await notifications.add(first)
    assert await notifications.pending_deliveries(10) == [first, second]
    await notifications.mark_delivered(first.notification_id)
    assert await notifications.pending_deliveries(10) == [second]


TRACEPARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"}


async def test_outbox_keeps_each_events_trace_context_and_reports_its_backlog(orders: OrderStore) -> None:
    assert await orders.outbox.backlog() == (0, None)
    before = time.time()
    traced = replace(_event("e-1", "o-1"), trace_context=TRACEPARENT)
    await orders.create(_order("o-1"), [traced, _event("e-2", "o-1")])
    await orders.create(_order("o-2"), [_event("e-3", "o-2")])
    pending = {e.event_id: e for e in await orders.outbox.pending_events(10)}
    assert pending["e-1"].trace_context == TRACEPARENT
    assert pending["e-2"].trace_context is None
    count, oldest = await orders.outbox.backlog()
    assert count == 3
    assert oldest is not None
    assert before - 1 <= oldest <= time.time()
    await orders.outbox.mark_published(list(pending.values()))
    assert await orders.outbox.backlog() == (0, None)


async def test_sqlite_outbox_of_an_older_version_gains_the_trace_and_time_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            event_type TEXT NOT NULL,
            payload BLOB NOT NULL,
            order_id TEXT NOT NULL DEFAULT ''
        );
        INSERT INTO outbox (event_id, subject, event_type, payload, order_id)
            VALUES ('e-old', 'orders.created', 'orders.v1.OrderCreated', x'0102', 'o-old');
        """
    )
    old.commit()
    old.close()
    store = SqliteOrderStore(path)
    await store.open()
    try:
        (waiting,) = await store.outbox.pending_events(10)
        assert (waiting.event_id, waiting.aggregate_id, waiting.trace_context) == ("e-old", "o-old", None)
        assert await store.outbox.backlog() == (1, None)  # written before times were kept: counted, no age
        await store.create(_order("o-new"), [replace(_event("e-new", "o-new"), trace_context=TRACEPARENT)])
        pending = await store.outbox.pending_events(10)
        assert [(e.event_id, e.trace_context) for e in pending] == [("e-old", None), ("e-new", TRACEPARENT)]
        count, oldest = await store.outbox.backlog()
        assert count == 2
        assert oldest is not None
    finally:
        await store.close()
