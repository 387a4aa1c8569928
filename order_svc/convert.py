"""Translation between order domain objects and their protobuf messages."""

from __future__ import annotations

from orders.v1 import orders_pb2

from chassis.convert import money_to_pb, timestamp
from order_svc.domain import LineItemDraft, Order, OrderDraft, OrderState

__all__ = ["draft_from_pb", "order_to_pb", "state_to_pb"]

_STATES = {
    OrderState.CREATED: orders_pb2.ORDER_STATE_CREATED,
    OrderState.PAID: orders_pb2.ORDER_STATE_PAID,
    OrderState.CANCELLED: orders_pb2.ORDER_STATE_CANCELLED,
}


def state_to_pb(state: OrderState) -> orders_pb2.OrderState.ValueType:
    return _STATES[state]


def draft_from_pb(order: orders_pb2.Order) -> OrderDraft:
    """The customer's order as sent; output-only fields are ignored."""
    return OrderDraft(
        customer_id=order.customer_id,
        payment_method=order.payment_method,
        line_items=[
            LineItemDraft(
                sku=item.sku,
                quantity=item.quantity,
                currency=item.unit_price.currency_code,
                units=item.unit_price.units,
                nanos=item.unit_price.nanos,
                has_price=item.HasField("unit_price"),
            )
            for item in order.line_items
        ],
    )


def order_to_pb(order: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        name=f"orders/{order.order_id}",
        order_id=order.order_id,
        customer_id=order.customer_id,
        line_items=[
            orders_pb2.LineItem(sku=i.sku, quantity=i.quantity, unit_price=money_to_pb(i.unit_price))
            for i in order.line_items
        ],
        total=money_to_pb(order.total),
        state=state_to_pb(order.state),
        payment_method=order.payment_method,
        create_time=timestamp(order.create_time),
        update_time=timestamp(order.update_time),
        cancel_reason=order.cancel_reason,
        payment_id=order.payment_id,
    )
