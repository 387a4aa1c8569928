"""Generated protobuf messages ⇄ the client's dataclasses, and the one home of the proto3 JSON the CLI prints."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from google.type import money_pb2
from orders.v1 import orders_pb2

from orders_client._errors import FieldViolation, InvalidOrder
from orders_client._models import Actor, LineItem, Money, Order, OrderState, OrderStep, RefundState, StepKind

__all__ = [
    "draft_to_pb",
    "money_from_pb",
    "money_to_pb",
    "order_from_pb",
    "order_json",
    "order_to_pb",
    "orders_json",
]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_STATES = {
    orders_pb2.ORDER_STATE_CREATED: OrderState.CREATED,
    orders_pb2.ORDER_STATE_PAID: OrderState.PAID,
    orders_pb2.ORDER_STATE_CANCELLED: OrderState.CANCELLED,
}
_REFUND_STATES = {
    orders_pb2.REFUND_STATE_PENDING: RefundState.PENDING,
    orders_pb2.REFUND_STATE_REFUNDED: RefundState.REFUNDED,
}
_STEP_KINDS = {
    orders_pb2.ORDER_STEP_KIND_PLACED: StepKind.PLACED,
    orders_pb2.ORDER_STEP_KIND_PAYMENT_SUCCEEDED: StepKind.PAYMENT_SUCCEEDED,
    orders_pb2.ORDER_STEP_KIND_PAYMENT_DECLINED: StepKind.PAYMENT_DECLINED,
    orders_pb2.ORDER_STEP_KIND_CANCELLED: StepKind.CANCELLED,
    orders_pb2.ORDER_STEP_KIND_PAYMENT_VOIDED: StepKind.PAYMENT_VOIDED,
    orders_pb2.ORDER_STEP_KIND_REFUND_REQUESTED: StepKind.REFUND_REQUESTED,
    orders_pb2.ORDER_STEP_KIND_REFUNDED: StepKind.REFUNDED,
}
_ACTORS = {orders_pb2.ACTOR_CUSTOMER: Actor.CUSTOMER, orders_pb2.ACTOR_PAYMENT: Actor.PAYMENT}
_STATES_PB = {value: key for key, value in _STATES.items()}
_REFUND_STATES_PB = {value: key for key, value in _REFUND_STATES.items()}
_STEP_KINDS_PB = {value: key for key, value in _STEP_KINDS.items()}
_ACTORS_PB = {value: key for key, value in _ACTORS.items()}


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


def _stamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def order_from_pb(order: orders_pb2.Order) -> Order:
    """The order as the client's dataclass; it keeps a copy of the message for :func:`order_json`."""
    converted = Order(
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
        refund_state=_REFUND_STATES.get(order.refund_state, RefundState.NONE),
        timeline=tuple(
            OrderStep(
                kind=_STEP_KINDS.get(step.kind, StepKind.UNSPECIFIED),
                time=step.time.ToDatetime(tzinfo=UTC),
                actor=_ACTORS.get(step.actor, Actor.UNSPECIFIED),
                detail=step.detail,
            )
            for step in order.timeline
        ),
    )
    kept = orders_pb2.Order()
    kept.CopyFrom(order)
    object.__setattr__(converted, "_message", kept)  # frozen: set once, here only
    return converted


def order_to_pb(order: Order) -> orders_pb2.Order:
    """The order as ``orders.v1.Order``: the message it came in, else one rebuilt from its fields."""
    if order._message is not None:
        return order._message
    message = orders_pb2.Order(
        name=order.name,
        order_id=order.order_id,
        customer_id=order.customer_id,
        line_items=[
            orders_pb2.LineItem(sku=i.sku, quantity=i.quantity, unit_price=money_to_pb(i.unit_price))
            for i in order.line_items
        ],
        total=money_to_pb(order.total),
        state=_STATES_PB.get(order.state, orders_pb2.ORDER_STATE_UNSPECIFIED),
        payment_method=order.payment_method,
        cancel_reason=order.cancel_reason,
        payment_id=order.payment_id,
        refund_state=_REFUND_STATES_PB.get(order.refund_state, orders_pb2.REFUND_STATE_UNSPECIFIED),
        timeline=[
            orders_pb2.OrderStep(
                kind=_STEP_KINDS_PB.get(step.kind, orders_pb2.ORDER_STEP_KIND_UNSPECIFIED),
                time=_stamp(step.time),
                actor=_ACTORS_PB.get(step.actor, orders_pb2.ACTOR_UNSPECIFIED),
                detail=step.detail,
            )
            for step in order.timeline
        ],
    )
    if order.create_time is not None:
        message.create_time.CopyFrom(_stamp(order.create_time))
    if order.update_time is not None:
        message.update_time.CopyFrom(_stamp(order.update_time))
    return message


def _json(message: Message) -> dict[str, Any]:
    # The gateway's printer: proto3 JSON names (orderId), enum names, int64 as strings, RFC 3339
    # times, and every field without presence printed even at its default (always_print_primitive_fields).
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def order_json(order: Order) -> dict[str, Any]:
    """The order exactly as the gateway prints an ``orders.v1.Order`` (GetOrder, each WatchOrder event)."""
    return _json(order_to_pb(order))


def orders_json(orders: Iterable[Order]) -> dict[str, Any]:
    """The orders as the gateway prints a ``ListOrdersResponse``; ``nextPageToken`` is "" (nothing left to fetch)."""
    return _json(orders_pb2.ListOrdersResponse(orders=[order_to_pb(o) for o in orders]))


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
