"""One trace follows an order through the three services and NATS, whatever happens on the way.

The services export to an OTLP receiver of the test's own (``devstack.otlp``). A trace is found
by the id of the order's OrderCreated event (``messaging.message.id`` of its PRODUCER span), and
its tree is written to ``artifacts/`` (``artifacts/trace.txt`` is the one the README shows).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from orders.v1 import orders_pb2

from chassis.ids import derived_id
from devstack.otlp import OtlpReceiver, ReceivedSpan, render_tree
from devstack.saga import SagaClient, saga_client
from devstack.stack import Stack, wait_for
from tests.integration.test_refunds import wait_charging, wait_settled

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
LATENCY_MS = 800  # the mock provider's round trip: long enough to cancel while a charge is under way
MESSAGE_ID = "messaging.message.id"
ATTEMPT = "messaging.nats.message.delivery_attempt"
OUTCOME = "messaging.nats.message.outcome"


@dataclass
class Traced:
    stack: Stack
    saga: SagaClient
    receiver: OtlpReceiver


def tracing_env(endpoint: str, **more: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms, not 5 s
        "PAYMENT_SVC_LATENCY_MS": str(LATENCY_MS),
        **more,
    }


@pytest.fixture(scope="module")
async def traced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Traced]:
    receiver = await OtlpReceiver().start()
    stack = Stack(Path(tmp_path_factory.mktemp("traced")), env=tracing_env(receiver.endpoint))
    try:
        await stack.start()
        async with saga_client(stack) as saga:
            yield Traced(stack, saga, receiver)
    finally:
        stack.stop()
        await receiver.stop()


# ── Reading a trace ──────────────────────────────────────────────────────────────────────────


class Tree:
    """The spans of one trace, with the parent/child queries the assertions need."""

    def __init__(self, spans: list[ReceivedSpan]) -> None:
        self.spans = spans
        self.trace_id = spans[0].trace_id if spans else ""

    def children(self, parent: ReceivedSpan, service: str, kind: str, name: str) -> list[ReceivedSpan]:
        return [
            s
            for s in self.spans
            if s.parent_span_id == parent.span_id and (s.service, s.kind, s.name) == (service, kind, name)
        ]

    def child(self, parent: ReceivedSpan, service: str, kind: str, name: str) -> ReceivedSpan:
        found = self.children(parent, service, kind, name)
        assert len(found) == 1, f"one {service} {kind} {name!r} under {parent.name!r}, got {len(found)}\n{self}"
        return found[0]

    def published(self, parent: ReceivedSpan, service: str, event_type: str) -> ReceivedSpan:
        """The publish of ``event_type`` under ``parent`` that succeeded (earlier attempts may have failed)."""
        attempts = self.children(parent, service, "PRODUCER", f"publish {event_type}")
        done = [s for s in attempts if not s.error]
        assert len(done) == 1, f"one successful publish of {event_type} under {parent.name!r}\n{self}"
        return done[0]

    def roots(self) -> list[ReceivedSpan]:
        ids = {s.span_id for s in self.spans}
        return [s for s in self.spans if s.parent_span_id not in ids]

    def __str__(self) -> str:
        return render_tree(self.spans)


def _find(tree: Tree, parent: ReceivedSpan, path: list[tuple[str, str, str]]) -> ReceivedSpan | None:
    """Follow ``(service, kind, name)`` steps down from ``parent``; the last span, or None if the trace lacks one."""
    here = parent
    for service, kind, name in path:
        found = [
            s
            for s in tree.children(here, service, kind, name)
            if not s.error and s.attributes.get(OUTCOME) in (None, "ack")
        ]
        if not found:
            return None
        here = found[-1]
    return here


def created_event_id(order_id: str) -> str:
    return derived_id("OrderCreated", order_id)


async def order_trace(
    receiver: OtlpReceiver, order_id: str, complete: Callable[[Tree], bool], timeout: float = 60
) -> Tree:
    """The trace of ``order_id`` (found by its OrderCreated event id) once ``complete`` holds for it."""
    event_id = created_event_id(order_id)

    async def whole() -> Tree | None:
        producers = [s for s in receiver.with_attribute(MESSAGE_ID, event_id) if s.kind == "PRODUCER"]
        if not producers:
            return None
        tree = Tree(receiver.trace(producers[0].trace_id))
        return tree if complete(tree) else None

    try:
        found: Tree | None = await wait_for(whole, timeout=timeout, interval=0.05, what=f"the trace of {order_id}")
    except TimeoutError:
        producers = receiver.with_attribute(MESSAGE_ID, event_id)
        partial = Tree(receiver.trace(producers[0].trace_id)) if producers else "no span of the order yet"
        raise AssertionError(f"the trace of {order_id} never completed; so far:\n{partial}") from None
    assert found is not None
    return found


PAID_PATH = [
    ("order_svc", "PRODUCER", "publish orders.v1.OrderCreated"),
    ("payment_svc", "CONSUMER", "process orders.v1.OrderCreated"),
    ("payment_svc", "PRODUCER", "publish payments.v1.PaymentSuccessful"),
    ("order_svc", "CONSUMER", "process payments.v1.PaymentSuccessful"),
    ("order_svc", "PRODUCER", "publish orders.v1.OrderStateChanged"),
    ("notification_svc", "CONSUMER", "process orders.v1.OrderStateChanged"),
]
CREATED_NOTICE_PATH = [
    ("order_svc", "PRODUCER", "publish orders.v1.OrderStateChanged"),
    ("notification_svc", "CONSUMER", "process orders.v1.OrderStateChanged"),
]


def server_span(tree: Tree, method: str = "CreateOrder") -> ReceivedSpan | None:
    return next(
        (
            s
            for s in tree.roots()
            if (s.service, s.kind, s.name) == ("order_svc", "SERVER", f"/orders.v1.OrderService/{method}")
        ),
        None,
    )


def paid_saga_complete(tree: Tree) -> bool:
    server = server_span(tree)
    return (
        server is not None
        and _find(tree, server, PAID_PATH) is not None
        and _find(tree, server, CREATED_NOTICE_PATH) is not None
    )


def assert_paid_saga(tree: Tree) -> dict[str, ReceivedSpan]:
    """CreateOrder (SERVER) → publish (PRODUCER) → payment_svc (CONSUMER) → charge, publish → order_svc → ….

    Returns the spans on the way by role.
    """
    assert {s.trace_id for s in tree.spans} == {tree.trace_id}
    assert {s.service for s in tree.spans} == {"order_svc", "payment_svc", "notification_svc"}
    (server,) = tree.roots()
    assert (server.service, server.kind, server.name) == ("order_svc", "SERVER", "/orders.v1.OrderService/CreateOrder")
    created = tree.published(server, "order_svc", "orders.v1.OrderCreated")
    assert created.attributes["messaging.system"] == "nats"
    assert created.attributes["messaging.destination.name"] == "orders.created"
    charges = tree.children(created, "payment_svc", "CONSUMER", "process orders.v1.OrderCreated")
    charge = charges[-1]
    assert charge.attributes[OUTCOME] == "ack"
    assert charge.attributes["messaging.consumer.group.name"] == "payment-svc-orders"
    provider = tree.child(charge, "payment_svc", "CLIENT", "payment provider charge")
    assert charge.start_ns <= provider.start_ns <= provider.end_ns <= charge.end_ns
    succeeded = tree.published(charge, "payment_svc", "payments.v1.PaymentSuccessful")
    applied = tree.child(succeeded, "order_svc", "CONSUMER", "process payments.v1.PaymentSuccessful")
    assert (applied.attributes[ATTEMPT], applied.attributes[OUTCOME]) == (1, "ack")
    paid_change = tree.published(applied, "order_svc", "orders.v1.OrderStateChanged")
    paid_notice = tree.child(paid_change, "notification_svc", "CONSUMER", "process orders.v1.OrderStateChanged")
    created_change = tree.published(server, "order_svc", "orders.v1.OrderStateChanged")
    created_notice = tree.child(created_change, "notification_svc", "CONSUMER", "process orders.v1.OrderStateChanged")
    for parent, child in [(server, created), (created, charge), (charge, succeeded), (succeeded, applied)]:
        assert child.start_ns >= parent.start_ns, f"{child.name} starts before {parent.name}"
    return {
        "server": server,
        "created": created,
        "charge": charge,
        "succeeded": succeeded,
        "applied": applied,
        "paid_notice": paid_notice,
        "created_notice": created_notice,
    }


def save_tree(name: str, tree: Tree) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(str(tree) + "\n")


def log_lines(path: Path, event: str, order_id: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event and line.get("order_id") == order_id]


# ── The scenarios ────────────────────────────────────────────────────────────────────────────


async def test_one_trace_follows_an_order_through_every_service_and_the_logs_carry_it(traced: Traced) -> None:
    order = await traced.saga.create("pm_card_visa")
    (final,) = await traced.saga.wait_final([order.order_id])
    assert final.state == orders_pb2.ORDER_STATE_PAID

    tree = await order_trace(traced.receiver, order.order_id, paid_saga_complete)
    save_tree("trace.txt", tree)
    spans = assert_paid_saga(tree)
    assert spans["charge"].attributes[ATTEMPT] == 1
    assert spans["charge"].attributes[MESSAGE_ID] == created_event_id(order.order_id)

    # Every log line written inside a traced operation names its trace and span.
    (placed,) = log_lines(traced.stack.order.log_path, "order created", order.order_id)
    assert (placed["trace_id"], placed["span_id"]) == (tree.trace_id, spans["server"].span_id)
    consumed = log_lines(traced.stack.payment.log_path, "event consumed", order.order_id)
    assert [(line["trace_id"], line["span_id"]) for line in consumed] == [(tree.trace_id, spans["charge"].span_id)]
    (recorded,) = log_lines(traced.stack.payment.log_path, "payment recorded", order.order_id)
    assert recorded["span_id"] == spans["charge"].span_id
    published = log_lines(traced.stack.order.log_path, "event published", order.order_id)
    assert {line["trace_id"] for line in published} == {tree.trace_id}
    assert spans["created"].span_id in {line["span_id"] for line in published}
    # Outside any span (start-up, background), no ids.
    started = [json.loads(line) for line in traced.stack.order.log_path.read_text().splitlines()[:5]]
    assert all("trace_id" not in line for line in started)


async def test_the_trace_survives_nats_being_down_while_the_order_was_placed(traced: Traced) -> None:
    stack, saga = traced.stack, traced.saga
    stack.nats.stop()
    try:
        order = await saga.create("pm_card_visa")
        assert order.state == orders_pb2.ORDER_STATE_CREATED
    finally:
        back_at = time.time_ns()
        stack.nats.start()
    (final,) = await saga.wait_final([order.order_id], timeout=90)
    assert final.state == orders_pb2.ORDER_STATE_PAID

    tree = await order_trace(traced.receiver, order.order_id, paid_saga_complete, timeout=90)
    save_tree("trace-nats-down.txt", tree)
    spans = assert_paid_saga(tree)
    # The context waited in the outbox: the request ended while NATS was away; the publish that
    # JetStream acknowledged ended after it was back, in the order's trace all the same.
    assert spans["server"].end_ns < back_at < spans["created"].end_ns


async def test_a_redelivered_message_shows_its_failed_attempt_and_the_retry_in_the_same_trace(traced: Traced) -> None:
    """payment_svc's first attempt fails (its database is locked by another process), the redelivery succeeds."""
    stack, saga, receiver = traced.stack, traced.saga, traced.receiver
    lock = sqlite3.connect(stack.root / "data" / "payments.sqlite3", isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN IMMEDIATE")  # every write of payment_svc now fails after its busy timeout
        order = await saga.create("pm_card_visa")
        event_id = created_event_id(order.order_id)

        async def first_attempt_failed() -> bool:
            return any(
                s.kind == "CONSUMER" and s.service == "payment_svc" and s.attributes.get(OUTCOME) == "nak"
                for s in receiver.with_attribute(MESSAGE_ID, event_id)
            )

        await wait_for(first_attempt_failed, timeout=30, interval=0.05, what="payment_svc's first attempt to fail")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    (final,) = await saga.wait_final([order.order_id])
    assert final.state == orders_pb2.ORDER_STATE_PAID

    tree = await order_trace(receiver, order.order_id, paid_saga_complete)
    save_tree("trace-redelivery.txt", tree)
    spans = assert_paid_saga(tree)
    attempts = tree.children(spans["created"], "payment_svc", "CONSUMER", "process orders.v1.OrderCreated")
    assert [(s.attributes[ATTEMPT], s.attributes[OUTCOME], s.error) for s in attempts] == [
        (1, "nak", True),
        (2, "ack", False),
    ]
    failed, retried = attempts
    assert "exception" in failed.event_names
    assert "database is locked" in str(dict(failed.events)["exception"].get("exception.message"))
    assert failed.attributes["messaging.nats.message.redelivered"] is False
    assert retried.attributes["messaging.nats.message.redelivered"] is True
    assert "redelivered" in retried.event_names
    assert retried.start_ns > failed.end_ns


async def test_after_a_cancel_the_refund_is_in_the_orders_trace_and_the_cancel_has_its_own(traced: Traced) -> None:
    saga, receiver = traced.saga, traced.receiver
    order = await saga.create("pm_card_visa")
    await wait_charging(saga, order.order_id)
    await saga.cancel(order.order_id, "too slow")
    final = await wait_settled(saga, order.order_id)
    assert (final.state, final.refund_state) == (orders_pb2.ORDER_STATE_CANCELLED, orders_pb2.REFUND_STATE_REFUNDED)

    refund_path = [
        ("order_svc", "PRODUCER", "publish orders.v1.OrderCreated"),
        ("payment_svc", "CONSUMER", "process orders.v1.OrderCreated"),
        ("payment_svc", "PRODUCER", "publish payments.v1.PaymentSuccessful"),
        ("order_svc", "CONSUMER", "process payments.v1.PaymentSuccessful"),
        ("order_svc", "PRODUCER", "publish orders.v1.RefundRequested"),
        ("payment_svc", "CONSUMER", "process orders.v1.RefundRequested"),
        ("payment_svc", "PRODUCER", "publish payments.v1.PaymentRefunded"),
        ("order_svc", "CONSUMER", "process payments.v1.PaymentRefunded"),
        ("order_svc", "PRODUCER", "publish orders.v1.OrderStateChanged"),
        ("notification_svc", "CONSUMER", "process orders.v1.OrderStateChanged"),
    ]

    def refunded(tree: Tree) -> bool:
        server = server_span(tree)
        return server is not None and _find(tree, server, refund_path) is not None

    tree = await order_trace(receiver, order.order_id, refunded)
    save_tree("trace-refund.txt", tree)
    server = server_span(tree)
    assert server is not None
    refund = _find(tree, server, refund_path[:6])
    assert refund is not None
    tree.child(refund, "payment_svc", "CLIENT", "payment provider refund")

    # The cancel is a request of its own: its trace holds the CancelOrder span and what it published.
    cancelled_id = derived_id("OrderCancelled", order.order_id)

    async def cancel_trace() -> Tree | None:
        producers = [s for s in receiver.with_attribute(MESSAGE_ID, cancelled_id) if s.kind == "PRODUCER"]
        if not producers:
            return None
        cancel = Tree(receiver.trace(producers[0].trace_id))
        root = server_span(cancel, "CancelOrder")
        voided = root and _find(
            cancel,
            root,
            [
                ("order_svc", "PRODUCER", "publish orders.v1.OrderCancelled"),
                ("payment_svc", "CONSUMER", "process orders.v1.OrderCancelled"),
            ],
        )
        return cancel if voided else None

    cancel = await wait_for(cancel_trace, timeout=30, interval=0.05, what="the cancel's trace")
    assert cancel is not None
    assert cancel.trace_id != tree.trace_id


async def test_otlp_over_http_works_too(tmp_path: Path) -> None:
    receiver = await OtlpReceiver().start()
    stack = Stack(
        tmp_path,
        env=tracing_env(
            receiver.http_endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", PAYMENT_SVC_LATENCY_MS="0"
        ),
    )
    try:
        await stack.start()
        async with saga_client(stack) as saga:
            order = await saga.create("pm_card_visa")
            await saga.wait_final([order.order_id])
            tree = await order_trace(receiver, order.order_id, paid_saga_complete)
        assert_paid_saga(tree)
    finally:
        stack.stop()
        await receiver.stop()
