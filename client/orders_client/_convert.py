"""Generated protobuf messages ⇄ the client's dataclasses (exact money, aware UTC datetimes)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from google.type import money_pb2
from orders.v1 import orders_pb2

from orders_client._errors import FieldViolation, InvalidOrder
from orders_client._models import LineItem, Money, Order, OrderState

__all__ = ["draft_to_pb", "money_from_pb", "money_to_pb", "order_from_pb"]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_STATES = {
    orders_pb2.ORDER_STATE_CREATED: OrderState.CREATED,
    orders_pb2.ORDER_STATE_PAID: OrderState.PAID,
    orders_pb2.ORDER_STATE_CANCELLED: OrderState.CANCELLED,
}


def money_to_pb(money: Money) -> money_pb2.Money:
    """ValueError if the amount is not exact in nanos or does not fit google.type.Money."""
    units, nanos = money.units_nanos()
    if not _INT64_MIN <= units <= _INT64_MAX:
        raise ValueError(f"{money.amount} is too large")
    return money_pb2.Money(currency_code=money.currency, units=units, nanos=nanos)


def money_from_pb(money: money_pb2.Money) -> Money:
    return Money.from_units_nanos(money.currency_code, money.units, money.nanos)


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def order_from_pb(order: orders_pb2.Order) -> Order:
    return Order(
        order_id=order.order_id or order.name.removeprefix("orders/"),
        customer_id=order.customer_id,
        line_items=tuple(
            LineItem(item.sku, item.quantity, money_from_pb(item.unit_price)) for item in order.line_items
        ),
        total=money_from_pb(order.total),
        state=_STATES.get(order.state, OrderState.UNSPECIFIED),
        payment_method=order.payment_method,
        create_time=_time(order.create_time, order.HasField("create_time")),
        update_time=_time(order.update_time, order.HasField("update_time")),
        cancel_reason=order.cancel_reason,
        payment_id=order.payment_id,
    )


def draft_to_pb(customer_id: str, items: Iterable[LineItem], payment_method: str) -> orders_pb2.Order:
    """The order to send to CreateOrder; InvalidOrder for what protobuf cannot even carry."""
    line_items, violations = [], []
    for i, item in enumerate(items):
        path = f"order.line_items[{i}]"
        quantity = item.quantity
        if not _INT32_MIN <= quantity <= _INT32_MAX:
            violations.append(FieldViolation(f"{path}.quantity", "must be between 1 and 1000"))
            quantity = 0
        try:
            price = money_to_pb(item.unit_price)
        except ValueError as error:
            violations.append(FieldViolation(f"{path}.unit_price", str(error)))
            price = money_pb2.Money()
        line_items.append(orders_pb2.LineItem(sku=item.sku, quantity=quantity, unit_price=price))
    if violations:
        raise InvalidOrder("the order has invalid fields", violations, code=None)
    return orders_pb2.Order(customer_id=customer_id, line_items=line_items, payment_method=payment_method)
