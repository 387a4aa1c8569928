"""The client's pure parts: parsing SKU:QTY:PRICE, exact money, protobuf conversion, settling, the API's JSON."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf import json_format, timestamp_pb2
from google.type import money_pb2
from orders.v1 import orders_pb2

from orders_client import Actor, InvalidOrder, LineItem, Money, Order, OrderState, OrderStep, RefundState, StepKind
from orders_client._convert import draft_to_pb, money_to_pb, order_from_pb, order_json, order_to_pb, orders_json

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "sku", "quantity", "amount"),
    [
        ("SKU-1:2:12.50", "SKU-1", 2, Decimal("12.50")),
        ("SKU-1:1:0", "SKU-1", 1, Decimal(0)),
        (" SKU-9 : 10 : 0.000000001 ", "SKU-9", 10, Decimal("0.000000001")),
        ("urn:isbn:123:3:9.99", "urn:isbn:123", 3, Decimal("9.99")),
        ("SKU-1:0:1", "SKU-1", 0, Decimal(1)),  # range checks are the service's: it names the field
    ],
)
def test_parse_line_item(text: str, sku: str, quantity: int, amount: Decimal) -> None:
    item = LineItem.parse(text, currency="EUR")
    assert item == LineItem(sku, quantity, Money(amount, "EUR"))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("SKU-1:2", "expected SKU:QUANTITY:UNIT_PRICE"),
        ("SKU-1", "expected SKU:QUANTITY:UNIT_PRICE"),
        (":2:12.50", "the SKU is empty"),
        ("SKU-1:two:12.50", "quantity 'two' is not a whole number"),
        ("SKU-1:2.5:12.50", "quantity '2.5' is not a whole number"),
        ("SKU-1:2:12,50", "unit price '12,50' is not a price"),
        ("SKU-1:2:", "unit price '' is not a price"),
        ("SKU-1:2:NaN", "unit price NaN is not a price"),
        ("SKU-1:2:0.0000000001", "more than 9 decimal places"),
    ],
)
def test_parse_line_item_rejects_with_the_bad_part(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=r"SKU|quantity|price") as caught:
        LineItem.parse(text)
    assert str(caught.value).startswith(repr(text))
    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    ("amount", "units", "nanos"),
    [
        ("12.50", 12, 500_000_000),
        ("0.99", 0, 990_000_000),
        ("1000000", 1_000_000, 0),
        ("-1.25", -1, -250_000_000),
        ("0.000000001", 0, 1),
    ],
)
def test_money_round_trips_exactly_through_units_and_nanos(amount: str, units: int, nanos: int) -> None:
    money = Money.parse(amount)
    assert money.units_nanos() == (units, nanos)
    assert money_to_pb(money) == money_pb2.Money(currency_code="USD", units=units, nanos=nanos)
    assert Money.from_units_nanos("USD", units, nanos) == money


def test_money_prints_cents_and_keeps_finer_amounts() -> None:
    assert str(Money.from_units_nanos("USD", 25, 0)) == "25.00 USD"
    assert str(Money(Decimal("12.5"))) == "12.50 USD"
    assert str(Money(Decimal("0.125"), "EUR")) == "0.125 EUR"
    assert str(Money.from_units_nanos("USD", 25, 0).amount) == "25.00"


def test_subtotal_is_exact() -> None:
    assert LineItem.parse("SKU-1:3:0.10").subtotal == Money(Decimal("0.30"))


def test_order_from_pb() -> None:
    message = orders_pb2.Order(
        name="orders/o-1",
        order_id="o-1",
        customer_id="alice",
        line_items=[
            orders_pb2.LineItem(
                sku="SKU-1", quantity=2, unit_price=money_pb2.Money(currency_code="USD", units=12, nanos=500_000_000)
            )
        ],
        total=money_pb2.Money(currency_code="USD", units=25),
        state=orders_pb2.ORDER_STATE_CANCELLED,
        payment_method="pm_card_declined",
        cancel_reason="payment failed: Your card was declined.",
        payment_id="pay-1",
    )
    message.create_time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    order = order_from_pb(message)
    assert order.name == "orders/o-1"
    assert order.state is OrderState.CANCELLED
    assert order.is_final
    assert order.total == Money(Decimal(25))
    assert order.line_items == (LineItem("SKU-1", 2, Money(Decimal("12.5"))),)
    assert order.create_time == datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert order.update_time is None
    assert order.cancel_reason.startswith("payment failed")


def test_unknown_state_is_unspecified_and_not_final() -> None:
    order = order_from_pb(orders_pb2.Order(order_id="o", state=orders_pb2.ORDER_STATE_UNSPECIFIED))
    assert order.state is OrderState.UNSPECIFIED
    assert not order.is_final


def test_draft_names_every_field_protobuf_cannot_carry() -> None:
    items = [LineItem("A", 2**31, Money(Decimal(1))), LineItem("B", 1, Money(Decimal(10) ** 30))]
    with pytest.raises(InvalidOrder) as caught:
        draft_to_pb("alice", items, "")
    assert [v.field for v in caught.value.violations] == [
        "order.line_items[0].quantity",
        "order.line_items[1].unit_price",
    ]
    assert caught.value.code is None


def test_draft_to_pb() -> None:
    draft = draft_to_pb("alice", [LineItem.parse("SKU-1:2:12.50")], "pm_card_visa")
    assert draft == orders_pb2.Order(
        customer_id="alice",
        payment_method="pm_card_visa",
        line_items=[
            orders_pb2.LineItem(
                sku="SKU-1", quantity=2, unit_price=money_pb2.Money(currency_code="USD", units=12, nanos=500_000_000)
            )
        ],
    )


def _stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(T0.timestamp()) + seconds, nanos=nanos)


def _refunded(nanos: int = 0) -> orders_pb2.Order:
    """An order cancelled by the customer while its payment was in flight, then charged and refunded."""
    steps = [
        orders_pb2.OrderStep(
            kind=orders_pb2.ORDER_STEP_KIND_PLACED, time=_stamp(0, nanos), actor=orders_pb2.ACTOR_CUSTOMER
        ),
        orders_pb2.OrderStep(
            kind=orders_pb2.ORDER_STEP_KIND_CANCELLED,
            time=_stamp(1, nanos),
            actor=orders_pb2.ACTOR_CUSTOMER,
            detail="changed my mind",
        ),
        orders_pb2.OrderStep(
            kind=orders_pb2.ORDER_STEP_KIND_PAYMENT_SUCCEEDED, time=_stamp(2, nanos), actor=orders_pb2.ACTOR_PAYMENT
        ),
        orders_pb2.OrderStep(
            kind=orders_pb2.ORDER_STEP_KIND_REFUND_REQUESTED,
            time=_stamp(2, nanos),
            actor=orders_pb2.ACTOR_PAYMENT,
            detail="charged after the cancel",
        ),
        orders_pb2.OrderStep(
            kind=orders_pb2.ORDER_STEP_KIND_REFUNDED,
            time=_stamp(3, nanos),
            actor=orders_pb2.ACTOR_PAYMENT,
            detail="25.00 USD refunded",
        ),
    ]
    return orders_pb2.Order(
        name="orders/o-9",
        order_id="o-9",
        customer_id="alice",
        line_items=[
            orders_pb2.LineItem(
                sku="SKU-1", quantity=2, unit_price=money_pb2.Money(currency_code="USD", units=12, nanos=500_000_000)
            )
        ],
        total=money_pb2.Money(currency_code="USD", units=25),
        state=orders_pb2.ORDER_STATE_CANCELLED,
        create_time=_stamp(0, nanos),
        update_time=_stamp(3, nanos),
        cancel_reason="changed my mind",
        payment_id="pay-9",
        refund_state=orders_pb2.REFUND_STATE_REFUNDED,
        timeline=steps,
    )


def test_order_from_pb_reads_the_refund_state_and_the_timeline_in_order() -> None:
    order = order_from_pb(_refunded())
    assert order.refund_state is RefundState.REFUNDED
    assert [step.kind for step in order.timeline] == [
        StepKind.PLACED,
        StepKind.CANCELLED,
        StepKind.PAYMENT_SUCCEEDED,
        StepKind.REFUND_REQUESTED,
        StepKind.REFUNDED,
    ]
    assert order.timeline[1] == OrderStep(
        StepKind.CANCELLED, datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), Actor.CUSTOMER, "changed my mind"
    )
    assert order.timeline[-1].actor is Actor.PAYMENT
    assert all(step.time.tzinfo is UTC for step in order.timeline)


def test_unknown_step_kinds_actors_and_refund_states_read_as_unspecified() -> None:
    message = orders_pb2.Order(order_id="o", refund_state=99)  # type: ignore[arg-type]
    message.timeline.add(kind=42, actor=7)
    order = order_from_pb(message)
    assert order.refund_state is RefundState.NONE
    assert order.timeline == (OrderStep(StepKind.UNSPECIFIED, datetime(1970, 1, 1, tzinfo=UTC), Actor.UNSPECIFIED),)


def _order(state: OrderState, payment_id: str = "", refund: RefundState = RefundState.NONE) -> Order:
    return Order("o", "alice", (), Money(Decimal(1)), state, payment_id=payment_id, refund_state=refund)


@pytest.mark.parametrize(
    ("order", "settled"),
    [
        (_order(OrderState.CREATED), False),
        (_order(OrderState.PAID, "pay-1"), True),
        (_order(OrderState.PAID), True),
        (_order(OrderState.CANCELLED), False),  # cancelled by the customer: the payment's outcome is not known yet
        (_order(OrderState.CANCELLED, "pay-1"), True),  # declined, or voided before any charge
        (_order(OrderState.CANCELLED, "pay-1", RefundState.PENDING), False),  # charged after the cancel
        (_order(OrderState.CANCELLED, "pay-1", RefundState.REFUNDED), True),
        (_order(OrderState.UNSPECIFIED, "pay-1"), False),
    ],
)
def test_an_order_is_settled_when_paid_or_cancelled_with_its_money_side_known(order: Order, settled: bool) -> None:
    assert order.is_settled is settled
    assert not settled or order.is_final


def test_order_json_is_the_gateway_mapping_of_the_message_the_order_came_in() -> None:
    message = _refunded(nanos=123_456_789)  # finer than a datetime: only the kept message has these nanos
    printed = order_json(order_from_pb(message))
    assert printed == json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    assert printed["orderId"] == "o-9"
    assert printed["total"] == {"currencyCode": "USD", "units": "25", "nanos": 0}
    assert printed["state"] == "ORDER_STATE_CANCELLED"
    assert printed["refundState"] == "REFUND_STATE_REFUNDED"
    assert printed["timeline"][0] == {
        "kind": "ORDER_STEP_KIND_PLACED",
        "time": "2026-01-02T03:04:05.123456789Z",
        "actor": "ACTOR_CUSTOMER",
        "detail": "",
    }


def test_defaults_are_printed_like_the_gateway_prints_them() -> None:
    printed = order_json(order_from_pb(orders_pb2.Order(order_id="o")))
    assert printed["paymentId"] == ""
    assert printed["lineItems"] == []
    assert printed["refundState"] == "REFUND_STATE_UNSPECIFIED"
    assert "createTime" not in printed  # a message field has presence: unset is omitted, as by the gateway


def test_a_list_prints_as_a_list_orders_response() -> None:
    messages = [_refunded(), orders_pb2.Order(order_id="o-2")]
    printed = orders_json([order_from_pb(m) for m in messages])
    expected = orders_pb2.ListOrdersResponse(orders=messages)
    assert printed == json_format.MessageToDict(expected, always_print_fields_with_no_presence=True)
    assert printed["nextPageToken"] == ""


def test_an_order_without_its_message_converts_back_to_the_same_message() -> None:
    message = _refunded()  # the service's times are whole microseconds
    rebuilt = dataclasses.replace(order_from_pb(message))  # a copy made by hand keeps no message
    assert order_to_pb(rebuilt) == message
    assert order_json(rebuilt) == order_json(order_from_pb(message))


def test_the_kept_message_is_a_copy_never_compared_or_shown() -> None:
    message = _refunded()
    order = order_from_pb(message)
    message.state = orders_pb2.ORDER_STATE_PAID
    assert order_json(order)["state"] == "ORDER_STATE_CANCELLED"
    assert order == dataclasses.replace(order)
    assert "_message" not in repr(order)
