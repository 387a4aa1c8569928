"""Metrics: orders counted where their changes commit, consumer outcomes, the outbox backlog, the endpoint switch."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Sequence

from prometheus_client import REGISTRY

from chassis import metrics
from chassis.delivery import Envelope, PermanentError
from chassis.outbox import OutboxEvent, OutboxRelay
from devstack.stack import wait_for
from order_svc.domain import OrderState, PaymentOutcome, PaymentResult
from order_svc.metrics import CountingOrderStore
from order_svc.usecases import OrderUseCases
from tests.unit.test_delivery_policy import VALID, FakeMsg, consumer
from tests.unit.test_order_usecases import ALICE, DRAFT, Clock, FakeFeed, FakeOrderStore


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counted() -> dict[str, float]:
    return {state.value: sample("orders_total", state=state.value) for state in OrderState}


async def test_orders_are_counted_once_when_created_and_when_they_reach_a_final_state() -> None:
    store = CountingOrderStore(FakeOrderStore())  # type: ignore[arg-type]
    ids = iter(str(uuid.UUID(int=i + 1)) for i in range(100))  # order ids are UUIDs
    usecases = OrderUseCases(store, FakeFeed(), clock=Clock(), ids=lambda: next(ids))
    before = counted()

    paid = await usecases.place(DRAFT, "paid", ALICE)
    assert await usecases.place(DRAFT, "paid", ALICE) == paid  # an idempotent repeat creates nothing
    await usecases.apply_payment(PaymentOutcome(paid.order_id, "p-1", PaymentResult.SUCCEEDED))
    await usecases.apply_payment(PaymentOutcome(paid.order_id, "p-1", PaymentResult.SUCCEEDED))  # a redelivery

    declined = await usecases.place(DRAFT, "", ALICE)
    await usecases.apply_payment(PaymentOutcome(declined.order_id, "p-2", PaymentResult.DECLINED))

    # Cancelled by the customer while the charge ran: the late charge and its refund are no new final state.
    late = await usecases.place(DRAFT, "", ALICE)
    await usecases.cancel(late.order_id, "", ALICE)
    await usecases.apply_payment(PaymentOutcome(late.order_id, "p-3", PaymentResult.SUCCEEDED))
    await usecases.apply_payment(PaymentOutcome(late.order_id, "p-3", PaymentResult.REFUNDED))

    voided = await usecases.place(DRAFT, "", ALICE)
    await usecases.cancel(voided.order_id, "", ALICE)
    await usecases.apply_payment(PaymentOutcome(voided.order_id, "p-4", PaymentResult.VOIDED))

    after = counted()
    assert {state: after[state] - before[state] for state in after} == {"CREATED": 4, "PAID": 1, "CANCELLED": 3}


async def test_consumer_outcomes_and_redeliveries_are_counted_per_consumer() -> None:
    labels = {"consumer": "payment-svc-orders"}

    def outcomes() -> tuple[float, ...]:
        return (
            sample("consumer_events_total", **labels, outcome="acked"),
            sample("consumer_events_total", **labels, outcome="nakked"),
            sample("consumer_events_total", **labels, outcome="dead_lettered"),
            sample("consumer_redeliveries_total", **labels),
        )

    results = iter([None, ConnectionError("away"), PermanentError("bad")])

    async def handler(envelope: Envelope) -> None:
        error = next(results)
        if error is not None:
            raise error

    delivery, _ = consumer(handler, max_deliver=5)
    before = outcomes()
    for attempt in (1, 1, 2):
        await delivery.handle(FakeMsg(VALID, num_delivered=attempt))  # type: ignore[arg-type]
    assert tuple(a - b for a, b in zip(outcomes(), before, strict=True)) == (1, 1, 1, 1)


class Backlog:
    def __init__(self, count: int, oldest: float | None) -> None:
        self.answer = (count, oldest)
        self.asked = 0

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        return []

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        return None

    async def backlog(self) -> tuple[int, float | None]:
        self.asked += 1
        return self.answer


async def test_the_relay_reads_the_backlog_at_most_once_per_interval_into_the_outbox_gauges() -> None:
    source = Backlog(7, time.time() - 30)
    relay = OutboxRelay(source, bus=None)  # type: ignore[arg-type]
    relay.BACKLOG_INTERVAL = 0.05
    started = time.monotonic()
    watching = asyncio.create_task(relay._watch_backlog())
    try:

        async def asked_twice() -> bool:
            return source.asked >= 2

        await wait_for(asked_twice, timeout=5, interval=0.005)
        assert time.monotonic() - started >= relay.BACKLOG_INTERVAL
        assert sample("outbox_pending_events") == 7
        assert sample("outbox_oldest_event_age_seconds") >= 30
        source.answer = (0, None)

        async def drained() -> bool:
            return sample("outbox_pending_events") == 0

        await wait_for(drained, timeout=5, interval=0.005)
        assert sample("outbox_oldest_event_age_seconds") == 0
    finally:
        relay.stop()
        await asyncio.wait_for(watching, 5)


def test_the_endpoint_is_off_at_minus_one_and_on_a_free_port_at_zero() -> None:
    assert metrics.start_metrics_server("127.0.0.1", -1) is None
    assert not metrics.serving()
    server = metrics.start_metrics_server("127.0.0.1", 0)
    assert server is not None
    try:
        assert server.port > 0
        assert metrics.serving()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        assert "process_cpu_seconds_total" in text
        assert "_created" not in text
    finally:
        server.close()
    assert not metrics.serving()
