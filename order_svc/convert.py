"""Translation between order domain objects and their protobuf messages."""

from __future__ import annotations

from orders.v1 import orders_pb2

from chassis.convert import money_to_pb, timestamp
from order_svc.domain import LineItemDraft, Order, OrderDraft, OrderState, RefundState, Step, StepActor

__all__ = ["actor_to_pb", "draft_from_pb", "order_to_pb", "refund_state_to_pb", "state_to_pb"]

_STATES = {
    OrderState.CREATED: orders_pb2.ORDER_STATE_CREATED,
    OrderState.PAID: orders_pb2.ORDER_STATE_PAID,
    OrderState.CANCELLED: orders_pb2.ORDER_STATE_CANCELLED,
}
_REFUND_STATES = {
    RefundState.NONE: orders_pb2.REFUND_STATE_UNSPECIFIED,
    RefundState.PENDING: orders_pb2.REFUND_STATE_PENDING,
    RefundState.REFUNDED: orders_pb2.REFUND_STATE_REFUNDED,
}
_ACTORS = {StepActor.CUSTOMER: orders_pb2.ACTOR_CUSTOMER, StepActor.PAYMENT: orders_pb2.ACTOR_PAYMENT}


def state_to_pb(state: OrderState) -> orders_pb2.OrderState.ValueType:
    return _STATES[state]


def refund_state_to_pb(state: RefundState) -> orders_pb2.RefundState.ValueType:
    return _REFUND_STATES[state]


def actor_to_pb(actor: StepActor | None) -> orders_pb2.Actor.ValueType:
    return orders_pb2.ACTOR_UNSPECIFIED if actor is None else _ACTORS[actor]


def step_to_pb(step: Step) -> orders_pb2.OrderStep:
    return orders_pb2.OrderStep(
        kind=orders_pb2.OrderStepKind.Value(f"ORDER_STEP_KIND_{step.kind.value}"),
        time=timestamp(step.time),
        actor=actor_to_pb(step.actor),
        detail=step.detail,
    )


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
        refund_state=refund_state_to_pb(order.refund_state),
        timeline=[step_to_pb(s) for s in order.timeline],
    )
