"""The saga over real processes and a real nats-server: final states, exactly-once effects, bad input, DLQ."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import grpc
import nats
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from orders.v1 import events_pb2 as order_events
from orders.v1 import orders_pb2

from chassis.ids import derived_id
from devstack.dlq import list_dead_letters, replay
from devstack.saga import SagaClient, order_request
from devstack.stack import Stack, wait_for

EXPECTED = {
    "pm_card_visa": orders_pb2.ORDER_STATE_PAID,
    "pm_card_mastercard": orders_pb2.ORDER_STATE_PAID,
    "": orders_pb2.ORDER_STATE_PAID,
    "pm_card_declined": orders_pb2.ORDER_STATE_CANCELLED,
}


async def test_200_orders_with_mixed_payment_methods_each_finish_with_one_payment_and_one_notification(
    saga: SagaClient,
) -> None:
    methods = list(EXPECTED) * 50
    created = await asyncio.gather(*(saga.create(m, customer_id="mixed-200") for m in methods))
    assert all(o.state == orders_pb2.ORDER_STATE_CREATED for o in created)
    ids = [o.order_id for o in created]

    final = await saga.wait_final(ids)
    for method, order in zip(methods, final, strict=True):
        assert order.state == EXPECTED[method], (method, order)
        if method == "pm_card_declined":
            assert order.cancel_reason == "payment failed: Your card was declined."
        assert order.payment_id

    payments = await saga.all_payments("mixed-200")
    assert sorted(p.order_id for p in payments) == sorted(ids)
    notifications = await saga.wait_notified(ids)
    assert Counter(n.order_id for n in notifications) == Counter(ids)
    declined = {o.order_id for o, m in zip(final, methods, strict=True) if m == "pm_card_declined"}
    assert {n.order_id for n in notifications if "cancelled" in n.message} == declined


async def test_the_same_order_created_event_delivered_twice_charges_once(stack: Stack, saga: SagaClient) -> None:
    order = await saga.create("pm_card_visa", customer_id="twice")
    await saga.wait_final([order.order_id])
    event = order_events.OrderCreated(
        event_id=derived_id("OrderCreated", order.order_id),
        order_id=order.order_id,
        customer_id=order.customer_id,
        total=order.total,
        payment_method=order.payment_method,
    )
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        headers = {"Event-Type": "orders.v1.OrderCreated"}
        same = await js.publish(
            "orders.created", event.SerializeToString(), headers={**headers, "Nats-Msg-Id": event.event_id}
        )
        assert same.duplicate, "JetStream drops a repeat of the same Nats-Msg-Id"
        other = await js.publish(
            "orders.created", event.SerializeToString(), headers={**headers, "Nats-Msg-Id": "a-different-id"}
        )
        assert not other.duplicate

        async def consumed() -> bool:
            info = await js.consumer_info("ORDERS", "payment-svc-orders")
            return bool(info.delivered.stream_seq >= other.seq and info.num_ack_pending == 0)

        await wait_for(consumed, timeout=20, what="payment_svc to consume the redelivered event")
    finally:
        await nc.close()
    payments = await saga.all_payments("twice")
    assert [p.order_id for p in payments] == [order.order_id]
    assert len(await saga.all_notifications(order_id=order.order_id)) == 1


INVALID = [
    ("customer id too long", {"customer_id": "c" * 129}, ["order.customer_id"]),
    ("no items", {"line_items": []}, ["order.line_items"]),
    ("101 items", {"items": 101}, ["order.line_items"]),
    ("sku empty", {"sku": ""}, ["order.line_items[0].sku"]),
    ("quantity 0", {"quantity": 0}, ["order.line_items[0].quantity"]),
    ("quantity 1001", {"quantity": 1001}, ["order.line_items[0].quantity"]),
    ("price negative", {"price": {"currency_code": "USD", "units": -1}}, ["order.line_items[0].unit_price"]),
    ("price missing", {"price": None}, ["order.line_items[0].unit_price"]),
    ("currency bad", {"price": {"currency_code": "usd", "units": 1}}, ["order.line_items[0].unit_price.currency_code"]),
    ("two currencies", {"second_currency": "EUR"}, ["order.line_items"]),
    ("payment method unknown", {"payment_method": "pm_bitcoin"}, ["order.payment_method"]),
    (
        "everything at once",
        {"customer_id": "c" * 129, "sku": "", "quantity": 0, "payment_method": "cash"},
        ["order.customer_id", "order.payment_method", "order.line_items[0].sku", "order.line_items[0].quantity"],
    ),
]


def _invalid_request(changes: dict[str, object], customer: str) -> orders_pb2.CreateOrderRequest:
    request = order_request(customer_id=customer)
    order = request.order
    item = order.line_items[0]
    if "customer_id" in changes:
        order.customer_id = str(changes["customer_id"])
    if "payment_method" in changes:
        order.payment_method = str(changes["payment_method"])
    if "sku" in changes:
        item.sku = str(changes["sku"])
    if "quantity" in changes:
        item.quantity = int(changes["quantity"])  # type: ignore[call-overload]
    if "price" in changes:
        item.ClearField("unit_price")
        if changes["price"] is not None:
            item.unit_price.CopyFrom(orders_pb2.LineItem(unit_price=changes["price"]).unit_price)
    if "second_currency" in changes:
        order.line_items.add(sku="SKU-2", quantity=1, unit_price={"currency_code": "EUR", "units": 1})
    if "items" in changes:
        for _ in range(int(changes["items"]) - 1):  # type: ignore[call-overload]
            order.line_items.add().CopyFrom(item)
    if "line_items" in changes:
        del order.line_items[:]
    return request


@pytest.mark.parametrize(("case", "changes", "fields"), INVALID, ids=[c[0] for c in INVALID])
async def test_each_invalid_field_is_named_in_invalid_argument_and_nothing_is_saved(
    saga: SagaClient, case: str, changes: dict[str, object], fields: list[str]
) -> None:
    customer = str(changes.get("customer_id", f"invalid-{case.replace(' ', '-')}"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await saga.orders.CreateOrder(_invalid_request(changes, customer), metadata=saga.as_customer(customer))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in status.details)
    named = [v.field for v in bad_request.field_violations]
    assert sorted(set(named)) == sorted(fields)
    assert all(v.description for v in bad_request.field_violations)
    listed = await saga.orders.ListOrders(orders_pb2.ListOrdersRequest(customer_id=customer))
    assert not listed.orders


async def test_an_idempotency_key_returns_the_first_order_and_refuses_a_different_request(saga: SagaClient) -> None:
    first = await saga.create("pm_card_visa", key="key-1", customer_id="idem")
    again = await saga.create("pm_card_visa", key="key-1", customer_id="idem")
    assert again.order_id == first.order_id
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await saga.create("pm_card_declined", key="key-1", customer_id="idem")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotency-key" in (raised.value.details() or "")
    listed = await saga.orders.ListOrders(orders_pb2.ListOrdersRequest(customer_id="idem"))
    assert [o.order_id for o in listed.orders] == [first.order_id]


async def test_list_orders_pages_newest_first_with_opaque_tokens(saga: SagaClient) -> None:
    created = [await saga.create(customer_id="pager") for _ in range(7)]
    pages, token = [], ""
    while True:
        page = await saga.orders.ListOrders(
            orders_pb2.ListOrdersRequest(customer_id="pager", page_size=3, page_token=token)
        )
        pages.append([o.order_id for o in page.orders])
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == [o.order_id for o in reversed(created)]
    for bad in (
        orders_pb2.ListOrdersRequest(customer_id="pager", page_token="not-a-token"),
        orders_pb2.ListOrdersRequest(customer_id="someone-else", page_token=token or "eyJ4IjoxfQ"),
        orders_pb2.ListOrdersRequest(page_size=-1),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await saga.orders.ListOrders(bad)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_of_an_unknown_order_is_not_found(saga: SagaClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await saga.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=str(uuid.uuid4())))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_order_streams_until_the_order_is_final(saga: SagaClient) -> None:
    order = await saga.create("pm_card_declined", customer_id="watcher")
    seen = [o.state async for o in saga.orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=order.order_id))]
    assert seen[-1] == orders_pb2.ORDER_STATE_CANCELLED
    assert set(seen) <= {orders_pb2.ORDER_STATE_CREATED, orders_pb2.ORDER_STATE_CANCELLED}


async def test_an_undecodable_message_is_dead_lettered_while_later_messages_flow_and_can_be_replayed(
    stack: Stack, saga: SagaClient
) -> None:
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        await js.publish(
            "orders.created",
            b"\xff\xff\xff not protobuf",
            headers={"Nats-Msg-Id": "garbage-1", "Event-Id": "garbage-1", "Event-Type": "orders.v1.OrderCreated"},
        )

        async def parked() -> list[object]:
            return [d for d in await list_dead_letters(js) if d.event_id == "garbage-1"]

        (letter,) = await wait_for(parked, timeout=20, what="the garbage to reach the dead letters")
        assert letter.consumer == "payment-svc-orders"  # type: ignore[attr-defined]
        assert "undecodable" in letter.reason  # type: ignore[attr-defined]

        order = await saga.create("pm_card_visa", customer_id="after-garbage")
        (final,) = await saga.wait_final([order.order_id])
        assert final.state == orders_pb2.ORDER_STATE_PAID

        await replay(js, letter)  # type: ignore[arg-type]

        async def parked_again() -> list[object]:
            return [d for d in await list_dead_letters(js) if d.headers.get("Replayed-From-Dlq")]

        (again,) = await wait_for(parked_again, timeout=20, what="the replayed garbage to be parked again")
        assert again.sequence != letter.sequence  # type: ignore[attr-defined]
        assert letter.sequence not in {d.sequence for d in await list_dead_letters(js)}  # type: ignore[attr-defined]
    finally:
        await nc.close()
