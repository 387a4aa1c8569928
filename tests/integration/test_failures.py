"""Failure scenarios, each on its own stack: NATS outage, a SIGKILLed service, replicas, replay, cancel races."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import nats
import pytest
from orders.v1 import orders_pb2
from payments.v1 import events_pb2 as payment_events

from chassis.ids import derived_id
from devstack.dlq import list_dead_letters, replay
from devstack.saga import SagaClient, saga_client
from devstack.stack import Stack, wait_for


@pytest.fixture
async def fresh(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Stack, SagaClient]]:
    """A stack of the test's own; ``@pytest.mark.parametrize('env', ...)`` style settings via ``request.param``."""
    env = {"ORDER_SVC_MAX_DELIVER": "3", **getattr(request, "param", {})}
    stack = Stack(tmp_path, env=env)
    try:
        await stack.start()
        async with saga_client(stack) as client:
            yield stack, client
    finally:
        stack.stop()


async def _stream_messages(stack: Stack, stream: str) -> int:
    nc = await nats.connect(stack.nats.url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def _assert_exactly_once(stack: Stack, saga: SagaClient, ids: list[str]) -> None:
    payments = await saga.all_payments()
    assert Counter(p.order_id for p in payments) == Counter(ids), "one payment per order"
    notifications = await saga.wait_notified(ids)
    assert Counter(n.order_id for n in notifications) == Counter(ids), "one notification per order"
    assert await _stream_messages(stack, "PAYMENTS") == len(ids), "one payment event per order on the bus"


async def test_orders_placed_while_nats_is_down_are_accepted_and_all_finish_when_it_returns(
    fresh: tuple[Stack, SagaClient],
) -> None:
    stack, saga = fresh
    stack.nats.stop()
    created = await asyncio.gather(*(saga.create("pm_card_visa" if i % 2 else "pm_card_declined") for i in range(50)))
    assert all(o.state == orders_pb2.ORDER_STATE_CREATED for o in created)
    ids = [o.order_id for o in created]
    assert all(o.state == orders_pb2.ORDER_STATE_CREATED for o in await saga.get_all(ids))

    stack.nats.start()
    final = await saga.wait_final(ids, timeout=90)
    assert Counter(o.state for o in final) == {orders_pb2.ORDER_STATE_PAID: 25, orders_pb2.ORDER_STATE_CANCELLED: 25}
    await _assert_exactly_once(stack, saga, ids)


@pytest.mark.parametrize("fresh", [{"PAYMENT_SVC_LATENCY_MS": "15", "PAYMENT_SVC_FETCH_BATCH": "1"}], indirect=True)
async def test_payment_service_killed_mid_run_and_restarted_finishes_every_order_once(
    fresh: tuple[Stack, SagaClient],
) -> None:
    stack, saga = fresh
    created = await asyncio.gather(*(saga.create("pm_card_visa") for _ in range(120)))
    ids = [o.order_id for o in created]

    async def some_but_not_all_paid() -> bool:
        paid = sum(o.state == orders_pb2.ORDER_STATE_PAID for o in await saga.get_all(ids))
        return 0 < paid < len(ids)

    await wait_for(some_but_not_all_paid, timeout=30, interval=0.01, what="the run to be midway")
    stack.payment.kill()
    paid_at_kill = sum(o.state == orders_pb2.ORDER_STATE_PAID for o in await saga.get_all(ids))
    stack.start_service("payment_svc")
    await stack.payment.wait_healthy()

    final = await saga.wait_final(ids, timeout=120)
    assert all(o.state == orders_pb2.ORDER_STATE_PAID for o in final)
    assert paid_at_kill < len(ids), "the kill landed mid-run"
    await _assert_exactly_once(stack, saga, ids)


async def test_replicas_share_the_work_without_doubling_and_watch_follows_changes_made_by_another_replica(
    fresh: tuple[Stack, SagaClient],
) -> None:
    stack, saga = fresh
    await stack.add_replica("payment_svc")
    await stack.add_replica("notification_svc")
    other_order_svc = await stack.add_replica("order_svc")

    created = await asyncio.gather(*(saga.create("pm_card_visa") for _ in range(150)))
    ids = [o.order_id for o in created]
    await saga.wait_final(ids)
    await _assert_exactly_once(stack, saga, ids)

    # A watcher on one order_svc replica sees a cancel made through the other replica.
    stack.payment.terminate()
    for replica in stack.replicas:
        if replica.module == "payment_svc":
            replica.terminate()
    order = await saga.create("pm_card_visa", customer_id="watch-across")
    async with grpc.aio.insecure_channel(other_order_svc.target) as channel:
        from orders.v1 import orders_pb2_grpc

        watch = orders_pb2_grpc.OrderServiceStub(channel).WatchOrder(
            orders_pb2.WatchOrderRequest(order_id=order.order_id), metadata=saga.as_customer("watch-across")
        )
        first = await watch.read()
        assert isinstance(first, orders_pb2.Order)
        assert first.state == orders_pb2.ORDER_STATE_CREATED
        await saga.cancel(order.order_id, "changed my mind", customer_id="watch-across")
        # The stream goes on until the money side is known (payment_svc is down here): read the next change only.
        update = await asyncio.wait_for(watch.read(), timeout=30)
        watch.cancel()
    assert isinstance(update, orders_pb2.Order)
    assert update.state == orders_pb2.ORDER_STATE_CANCELLED
    assert update.cancel_reason == "changed my mind"


async def test_cancel_works_only_from_created_and_a_payment_that_lands_after_it_never_revives_the_order(
    fresh: tuple[Stack, SagaClient],
) -> None:
    stack, saga = fresh
    stack.payment.terminate()
    order = await saga.create("pm_card_visa")
    cancelled = await saga.cancel(order.order_id)
    assert cancelled.state == orders_pb2.ORDER_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await saga.cancel(order.order_id)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    stack.start_service("payment_svc")
    await stack.payment.wait_healthy()

    async def money_side_known() -> orders_pb2.Order | None:
        (current,) = await saga.get_all([order.order_id])
        pending = current.refund_state == orders_pb2.REFUND_STATE_PENDING
        return current if current.payment_id and not pending else None

    after: orders_pb2.Order | None = await wait_for(money_side_known, timeout=30, what="the payment's outcome")
    assert after is not None
    assert after.state == orders_pb2.ORDER_STATE_CANCELLED
    assert after.cancel_reason == "cancelled by the customer"
    assert after.refund_state in {orders_pb2.REFUND_STATE_UNSPECIFIED, orders_pb2.REFUND_STATE_REFUNDED}


async def test_a_payment_event_parked_as_dead_letter_is_applied_when_replayed_after_the_cause_is_fixed(
    fresh: tuple[Stack, SagaClient],
) -> None:
    stack, saga = fresh
    stack.payment.terminate()
    order_id = derived_id("idempotency-key", "alice", "replay-me")  # keys are scoped per customer
    event = payment_events.PaymentSuccessful(
        event_id="early-payment", order_id=order_id, customer_id="alice", payment_id="pay-early"
    )
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        await js.publish(
            "payments.succeeded",
            event.SerializeToString(),
            headers={
                "Nats-Msg-Id": "early-payment",
                "Event-Id": "early-payment",
                "Event-Type": event.DESCRIPTOR.full_name,
            },
        )

        async def parked() -> list[object]:
            return [d for d in await list_dead_letters(js) if d.consumer == "order-svc-payments"]

        (letter,) = await wait_for(parked, timeout=30, what="order_svc to give up after max_deliver")
        assert "max_deliver (3) exhausted" in letter.reason  # type: ignore[attr-defined]

        order = await saga.create("pm_card_visa", key="replay-me")
        assert order.order_id == order_id
        assert order.state == orders_pb2.ORDER_STATE_CREATED
        await replay(js, letter)  # type: ignore[arg-type]
        (final,) = await saga.wait_final([order_id], timeout=30)
        assert final.state == orders_pb2.ORDER_STATE_PAID
        assert final.payment_id == "pay-early"
        assert not await parked()
    finally:
        await nc.close()


async def test_sigterm_stops_each_service_gracefully(fresh: tuple[Stack, SagaClient]) -> None:
    stack, saga = fresh
    order = await saga.create("pm_card_visa")
    await saga.wait_final([order.order_id])
    for service in stack.services.values():
        assert service.terminate() == 0
        assert '"service stopped"' in service.log_path.read_text()


async def test_services_started_before_nats_serve_at_once_and_finish_orders_when_it_arrives(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        stack.identity.start()
        for module in stack.services:
            stack.start_service(module)
        await asyncio.gather(*(s.wait_healthy() for s in stack.services.values()))
        async with saga_client(stack) as saga:
            order = await saga.create("pm_card_visa")
            assert order.state == orders_pb2.ORDER_STATE_CREATED
            stack.nats.start()
            (final,) = await saga.wait_final([order.order_id])
            assert final.state == orders_pb2.ORDER_STATE_PAID
            await saga.wait_notified([order.order_id])
    finally:
        stack.stop()


async def test_a_service_that_never_reached_nats_still_stops_gracefully(tmp_path: Path) -> None:
    stack = Stack(tmp_path)  # nats-server is never started
    try:
        for module in stack.services:
            stack.start_service(module)
        await asyncio.gather(*(s.wait_healthy() for s in stack.services.values()))
        for service in stack.services.values():
            assert service.terminate(timeout=10) == 0, f"{service.module} needed SIGKILL"
    finally:
        stack.stop()
