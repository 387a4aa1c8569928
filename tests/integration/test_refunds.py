"""Compensation end to end: a cancelled order is voided or refunded exactly once, and told only the truth."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from notifications.v1 import notifications_pb2
from orders.v1 import events_pb2 as order_events
from orders.v1 import orders_pb2
from payments.v1 import payments_pb2

from devstack.saga import SagaClient, saga_client
from devstack.stack import Stack, wait_for

LATENCY_MS = 1500
KIND = notifications_pb2.NotificationKind
STEP = orders_pb2.OrderStepKind


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[tuple[Stack, SagaClient]]:
    """A stack whose mock payment provider takes LATENCY_MS per charge and per refund."""
    stack = Stack(tmp_path, env={"PAYMENT_SVC_LATENCY_MS": str(LATENCY_MS)})
    try:
        await stack.start()
        async with saga_client(stack) as client:
            yield stack, client
    finally:
        stack.stop()


def settled(order: orders_pb2.Order) -> bool:
    if order.state == orders_pb2.ORDER_STATE_PAID:
        return True
    return (
        order.state == orders_pb2.ORDER_STATE_CANCELLED
        and bool(order.payment_id)
        and order.refund_state != orders_pb2.REFUND_STATE_PENDING
    )


async def wait_settled(saga: SagaClient, order_id: str, timeout: float = 60) -> orders_pb2.Order:
    async def probe() -> orders_pb2.Order | None:
        (order,) = await saga.get_all([order_id])
        return order if settled(order) else None

    order: orders_pb2.Order | None = await wait_for(
        probe, timeout=timeout, interval=0.05, what=f"orders/{order_id} settled"
    )
    assert order is not None
    return order


async def wait_charging(saga: SagaClient, order_id: str) -> None:
    """Until payment_svc has reserved the charge (PENDING): the provider call is under way."""

    async def pending() -> bool:
        payment = await saga.payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order_id), timeout=5)
        return bool(payment.status == payments_pb2.PAYMENT_STATUS_PENDING)

    await wait_for(pending, timeout=30, interval=0.02, what="the charge to start")


async def kinds_once_quiet(saga: SagaClient, order_id: str, expected: int) -> list[int]:
    async def enough() -> list[int]:
        notes = await saga.all_notifications(order_id=order_id)
        return sorted(n.kind for n in notes) if len(notes) >= expected else []

    return list(await wait_for(enough, timeout=30, interval=0.05, what="notifications"))


async def test_a_cancel_during_a_slow_charge_ends_cancelled_refunded_once_and_told_exactly_that(
    slow: tuple[Stack, SagaClient],
) -> None:
    stack, saga = slow
    order = await saga.create("pm_card_visa")
    await wait_charging(saga, order.order_id)
    cancelled = await saga.cancel(order.order_id, "oops")
    assert cancelled.state == orders_pb2.ORDER_STATE_CANCELLED

    final = await wait_settled(saga, order.order_id)
    assert (final.state, final.refund_state) == (orders_pb2.ORDER_STATE_CANCELLED, orders_pb2.REFUND_STATE_REFUNDED)
    assert [s.kind for s in final.timeline] == [
        STEP.ORDER_STEP_KIND_PLACED,
        STEP.ORDER_STEP_KIND_CANCELLED,
        STEP.ORDER_STEP_KIND_PAYMENT_SUCCEEDED,
        STEP.ORDER_STEP_KIND_REFUND_REQUESTED,
        STEP.ORDER_STEP_KIND_REFUNDED,
    ]
    assert final.timeline[1].actor == orders_pb2.ACTOR_CUSTOMER
    assert final.timeline[-1].detail == "25.00 USD refunded"

    payment = await saga.payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order.order_id))
    assert payment.status == payments_pb2.PAYMENT_STATUS_REFUNDED
    assert payment.HasField("refund_time")

    kinds = await kinds_once_quiet(saga, order.order_id, expected=2)
    assert kinds == [KIND.NOTIFICATION_KIND_ORDER_CANCELLED, KIND.NOTIFICATION_KIND_ORDER_REFUNDED]
    notes = {n.kind: n.message for n in await saga.all_notifications(order_id=order.order_id)}
    assert notes[KIND.NOTIFICATION_KIND_ORDER_REFUNDED].endswith("was refunded: 25.00 USD.")

    # A second RefundRequested (a redelivery, a replayed dead letter) refunds nothing more.
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        msg = await js.get_last_msg("ORDERS", "orders.refund_requested")
        request = order_events.RefundRequested.FromString(msg.data or b"")
        assert request.order_id == order.order_id
        headers = {"Event-Type": "orders.v1.RefundRequested", "Event-Id": "again", "Nats-Msg-Id": "again"}
        await js.publish("orders.refund_requested", msg.data or b"", headers=headers)

        async def redelivery_handled() -> bool:
            info = await js.consumer_info("ORDERS", "payment-svc-orders")
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await wait_for(redelivery_handled, timeout=30, what="the repeated refund request to be handled")
        refunded = 0
        info = await js.stream_info("PAYMENTS")
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            stored = await js.get_msg("PAYMENTS", seq)
            if stored.subject == "payments.refunded":
                refunded += 1
        assert refunded == 1, "exactly one PaymentRefunded on the bus"
    finally:
        await nc.close()
    after = await saga.payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order.order_id))
    assert after.refund_time == payment.refund_time
    assert len(await saga.all_notifications(order_id=order.order_id)) == 2


async def test_a_cancel_that_payment_svc_sees_with_the_order_is_voided_or_refunded_never_kept(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        await stack.start()
        async with saga_client(stack) as saga:
            stack.payment.terminate()
            orders = [await saga.create("pm_card_visa") for _ in range(6)]
            for order in orders:
                await saga.cancel(order.order_id)
            stack.start_service("payment_svc")
            await stack.payment.wait_healthy()
            outcomes: Counter[int] = Counter()
            for order in orders:
                final = await wait_settled(saga, order.order_id)
                payment = await saga.payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order.order_id))
                outcomes[payment.status] += 1
                assert payment.status in {payments_pb2.PAYMENT_STATUS_VOIDED, payments_pb2.PAYMENT_STATUS_REFUNDED}
                refunded = payment.status == payments_pb2.PAYMENT_STATUS_REFUNDED
                expected = (
                    orders_pb2.REFUND_STATE_REFUNDED if refunded else orders_pb2.REFUND_STATE_UNSPECIFIED,
                    STEP.ORDER_STEP_KIND_REFUNDED if refunded else STEP.ORDER_STEP_KIND_PAYMENT_VOIDED,
                )
                assert (final.refund_state, final.timeline[-1].kind) == expected
                kinds = await kinds_once_quiet(saga, order.order_id, expected=2 if refunded else 1)
                assert KIND.NOTIFICATION_KIND_ORDER_PAID not in kinds
                assert kinds[0] == KIND.NOTIFICATION_KIND_ORDER_CANCELLED
            assert sum(outcomes.values()) == len(orders)
    finally:
        stack.stop()


async def test_a_message_arriving_while_a_slow_charge_runs_starts_at_once_not_after_it(
    slow: tuple[Stack, SagaClient],
) -> None:
    _, saga = slow
    first = await saga.create("pm_card_visa")
    await wait_charging(saga, first.order_id)
    second = await saga.create("pm_card_visa")
    started = time.monotonic()
    finals = await saga.wait_final([first.order_id, second.order_id], timeout=30)
    assert all(o.state == orders_pb2.ORDER_STATE_PAID for o in finals)
    took = finals[1].update_time.ToDatetime() - finals[1].create_time.ToDatetime()
    latency = LATENCY_MS / 1000
    # In waves the second order would wait for the first charge to end: about twice the latency.
    assert took.total_seconds() < 1.5 * latency, f"placed → PAID took {took.total_seconds():.2f}s"
    assert time.monotonic() - started < 30


async def test_a_payment_svc_killed_between_charge_and_refund_still_refunds_exactly_once(
    slow: tuple[Stack, SagaClient],
) -> None:
    stack, saga = slow
    order = await saga.create("pm_card_visa")
    await wait_charging(saga, order.order_id)
    await saga.cancel(order.order_id)

    async def charged() -> bool:
        payment = await saga.payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order.order_id), timeout=5)
        return bool(payment.status == payments_pb2.PAYMENT_STATUS_SUCCEEDED)

    await wait_for(charged, timeout=30, interval=0.01, what="the charge to be saved")
    stack.payment.kill()  # the refund (1.5 s at the provider) is owed or under way: nothing saved yet
    stack.start_service("payment_svc")
    await stack.payment.wait_healthy()

    final = await wait_settled(saga, order.order_id, timeout=90)
    assert final.refund_state == orders_pb2.REFUND_STATE_REFUNDED
    payment = await saga.payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order.order_id))
    assert payment.status == payments_pb2.PAYMENT_STATUS_REFUNDED
    kinds = await kinds_once_quiet(saga, order.order_id, expected=2)
    assert kinds == [KIND.NOTIFICATION_KIND_ORDER_CANCELLED, KIND.NOTIFICATION_KIND_ORDER_REFUNDED]
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("PAYMENTS")
        subjects = [
            (await js.get_msg("PAYMENTS", s)).subject for s in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()
    assert Counter(subjects)["payments.refunded"] == 1
    assert [s.kind for s in final.timeline].count(STEP.ORDER_STEP_KIND_REFUNDED) == 1
