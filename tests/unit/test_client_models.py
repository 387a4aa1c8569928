"""The client's pure parts: parsing SKU:QTY:PRICE, exact money, protobuf conversion."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.type import money_pb2
from orders.v1 import orders_pb2

from orders_client import InvalidOrder, LineItem, Money, OrderState
from orders_client._convert import draft_to_pb, money_to_pb, order_from_pb


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
