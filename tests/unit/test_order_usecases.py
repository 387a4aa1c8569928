"""Order use cases over an in-memory fake store: idempotency, paging, guarded changes, watch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from chassis.errors import InvalidArgument
from chassis.outbox import OutboxEvent
from chassis.paging import Cursor
from chassis.timefmt import format_time
from order_svc.domain import (
    Caller,
    IdempotencyKeyReused,
    LineItemDraft,
    NotYourCustomerId,
    Order,
    OrderDraft,
    OrderNotCancellable,
    OrderNotFound,
    OrderState,
    PaymentOutcome,
    PaymentResult,
)
from order_svc.usecases import OrderUseCases


class FakeOrderStore:
    """The OrderStore contract in a dict (the real adapters pass the same contract suite)."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.events: list[OutboxEvent] = []
        self.outbox = None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, order: Order, events: Sequence[OutboxEvent]) -> tuple[Order, bool]:
        if order.order_id in self.orders:
            return self.orders[order.order_id], False
        self.orders[order.order_id] = order
        self.events.extend(events)
        return order, True

    async def get(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Order]:
        rows = sorted(
            (o for o in self.orders.values() if not customer_id or o.customer_id == customer_id),
            key=lambda o: (format_time(o.create_time), o.order_id),
            reverse=True,
        )
        if after is not None:
            rows = [o for o in rows if (format_time(o.create_time), o.order_id) < after]
        return rows[:limit]

    async def save(self, order: Order, expected_version: int, events: Sequence[OutboxEvent]) -> bool:
        if self.orders[order.order_id].version != expected_version:
            return False
        self.orders[order.order_id] = order
        self.events.extend(events)
        return True


class FakeSignal:
    def __init__(self) -> None:
        self.fired = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self.fired.wait(), timeout)
        self.fired.clear()


class FakeFeed:
    def __init__(self) -> None:
        self.signals: list[FakeSignal] = []

    @asynccontextmanager
    async def subscribe(self, order_id: str) -> AsyncIterator[FakeSignal]:
        signal = FakeSignal()
        self.signals.append(signal)
        yield signal

    def fire(self) -> None:
        for signal in self.signals:
            signal.fired.set()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def make() -> tuple[OrderUseCases, FakeOrderStore, FakeFeed, list[int]]:
    store, feed, commits = FakeOrderStore(), FakeFeed(), [0]
    ids = iter(f"00000000-0000-4000-8000-{i:012d}" for i in range(1000))  # order ids are UUIDs

    def on_commit() -> None:
        commits[0] += 1
        feed.fire()

    usecases = OrderUseCases(store, feed, on_commit=on_commit, clock=Clock(), ids=lambda: next(ids))  # type: ignore[arg-type]
    return usecases, store, feed, commits


ALICE = Caller("alice")
BOB = Caller("bob")
OPERATOR = Caller("ops", operator=True)
DRAFT = OrderDraft("alice", [LineItemDraft("SKU-1", 2, "USD", 12, 500_000_000)], "pm_card_visa")


async def test_placing_saves_the_order_with_its_created_and_changed_events_and_wakes_the_relay() -> None:
    usecases, store, _, commits = make()
    order = await usecases.place(DRAFT, "", ALICE)
    assert store.orders[order.order_id] == order
    assert [e.subject for e in store.events] == ["orders.created", f"orders.changed.{order.order_id}"]
    assert commits == [1]


async def test_the_same_idempotency_key_returns_the_first_order_and_a_different_request_is_refused() -> None:
    usecases, store, _, commits = make()
    first = await usecases.place(DRAFT, "k", ALICE)
    assert await usecases.place(DRAFT, "k", ALICE) == first
    assert (len(store.orders), commits) == (1, [1])
    with pytest.raises(IdempotencyKeyReused):
        await usecases.place(OrderDraft("alice", DRAFT.line_items, "pm_card_amex"), "k", ALICE)


async def test_listing_pages_through_every_order_once_newest_first() -> None:
    usecases, *_ = make()
    placed = [await usecases.place(DRAFT, "", ALICE) for _ in range(5)]
    seen, token = [], ""
    while True:
        page, token = await usecases.list("alice", 2, token, ALICE)
        seen += [o.order_id for o in page]
        if not token:
            break
    assert seen == [o.order_id for o in reversed(placed)]
    with pytest.raises(InvalidArgument):
        await usecases.list("bob", 2, (await usecases.list("alice", 2, "", ALICE))[1], OPERATOR)


async def test_cancel_and_payment_move_the_order_once_and_emit_one_change_each() -> None:
    usecases, store, _, _ = make()
    order = await usecases.place(DRAFT, "", ALICE)
    cancelled = await usecases.cancel(order.order_id, "", ALICE)
    assert cancelled.state is OrderState.CANCELLED
    with pytest.raises(OrderNotCancellable):
        await usecases.cancel(order.order_id, "", ALICE)
    await usecases.apply_payment(PaymentOutcome(order.order_id, "p-1", PaymentResult.SUCCEEDED))
    await usecases.apply_payment(PaymentOutcome(order.order_id, "p-1", PaymentResult.SUCCEEDED))
    assert store.orders[order.order_id].state is OrderState.CANCELLED
    assert len([e for e in store.events if e.subject.startswith("orders.changed.")]) == 3
    (refund,) = [e for e in store.events if e.subject == "orders.refund_requested"]
    assert refund.event_type == "orders.v1.RefundRequested"


async def test_a_payment_for_an_unknown_order_is_retryable_not_dropped() -> None:
    usecases, *_ = make()
    with pytest.raises(LookupError):
        await usecases.apply_payment(PaymentOutcome("nope", "p-1", PaymentResult.SUCCEEDED))
    with pytest.raises(OrderNotFound):
        await usecases.get(str(uuid.uuid4()), ALICE)


async def test_watch_yields_each_change_and_ends_at_a_final_state() -> None:
    usecases, *_ = make()
    order = await usecases.place(DRAFT, "", ALICE)
    seen: list[OrderState] = []

    async def watch() -> None:
        async for o in usecases.watch(order.order_id, ALICE):
            seen.append(o.state)
            if o.state is OrderState.CREATED:
                await usecases.apply_payment(PaymentOutcome(order.order_id, "p-1", PaymentResult.SUCCEEDED))

    await asyncio.wait_for(watch(), 5)
    assert seen == [OrderState.CREATED, OrderState.PAID]


async def test_a_customer_never_sees_nor_changes_another_customers_order_and_cannot_tell_it_exists() -> None:
    usecases, *_ = make()
    order = await usecases.place(DRAFT, "", ALICE)
    for attempt in (
        usecases.get(order.order_id, BOB),
        usecases.cancel(order.order_id, "", BOB),
        usecases.cancel(order.order_id, "", OPERATOR),
    ):
        with pytest.raises(OrderNotFound) as raised:
            await attempt
        assert str(raised.value) == f"orders/{order.order_id} not found"  # word for word an unknown id's answer
    with pytest.raises(OrderNotFound):
        async for _ in usecases.watch(order.order_id, BOB):
            pass
    assert (await usecases.get(order.order_id, OPERATOR)).order_id == order.order_id


async def test_an_order_is_always_placed_in_the_callers_name() -> None:
    usecases, *_ = make()
    mine = await usecases.place(OrderDraft("", DRAFT.line_items, "pm_card_visa"), "", BOB)
    assert mine.customer_id == "bob"
    with pytest.raises(NotYourCustomerId):
        await usecases.place(DRAFT, "", BOB)  # DRAFT names alice


async def test_listing_shows_a_customer_only_their_own_orders_and_an_operator_everyones() -> None:
    usecases, *_ = make()
    await usecases.place(DRAFT, "", ALICE)
    await usecases.place(OrderDraft("", DRAFT.line_items, "pm_card_visa"), "", BOB)
    assert {o.customer_id for o in (await usecases.list("", 50, "", BOB))[0]} == {"bob"}
    with pytest.raises(NotYourCustomerId):
        await usecases.list("alice", 50, "", BOB)
    assert {o.customer_id for o in (await usecases.list("", 50, "", OPERATOR))[0]} == {"alice", "bob"}


async def test_the_same_idempotency_key_from_two_customers_makes_two_orders() -> None:
    usecases, *_ = make()
    alices = await usecases.place(DRAFT, "shared-key", ALICE)
    bobs = await usecases.place(OrderDraft("bob", DRAFT.line_items, DRAFT.payment_method), "shared-key", BOB)
    assert alices.order_id != bobs.order_id


@pytest.mark.parametrize("order_id", ["", "nope", "a\x01b"])
async def test_a_malformed_order_id_is_invalid_argument_before_any_lookup(order_id: str) -> None:
    usecases, *_ = make()
    for call in (usecases.get(order_id, ALICE), usecases.cancel(order_id, "", ALICE)):
        with pytest.raises(InvalidArgument) as raised:
            await call
        assert [v.field for v in raised.value.violations] == ["order_id"]
    with pytest.raises(InvalidArgument):
        async for _ in usecases.watch(order_id, ALICE):
            pass
