"""Outbound events of order_svc: a changed order → protobuf event → outbox entry."""

from __future__ import annotations

from orders.v1 import events_pb2, orders_pb2

from chassis.convert import money_to_pb, timestamp
from chassis.ids import derived_id
from chassis.outbox import OutboxEvent
from chassis.routing import subject_of
from order_svc.convert import actor_to_pb, refund_state_to_pb, state_to_pb
from order_svc.domain import Order, RefundState, StepActor

__all__ = ["changed_subject", "events_for"]


def changed_subject(order_id: str) -> str:
    """Where the changes of one order are published (WatchOrder follows it)."""
    return subject_of(events_pb2.OrderStateChanged(order_id=order_id))


def _order_created(order: Order) -> OutboxEvent:
    event_id = derived_id("OrderCreated", order.order_id)
    event = events_pb2.OrderCreated(
        event_id=event_id,
        occur_time=timestamp(order.create_time),
        order_id=order.order_id,
        customer_id=order.customer_id,
        total=money_to_pb(order.total),
        payment_method=order.payment_method,
        line_items=[
            orders_pb2.LineItem(sku=i.sku, quantity=i.quantity, unit_price=money_to_pb(i.unit_price))
            for i in order.line_items
        ],
    )
    return OutboxEvent.of(event, event_id=event_id, aggregate_id=order.order_id)


def _order_changed(order: Order) -> OutboxEvent:
    event_id = derived_id("OrderStateChanged", order.order_id, str(order.version))
    event = events_pb2.OrderStateChanged(
        event_id=event_id,
        occur_time=timestamp(order.update_time),
        order_id=order.order_id,
        customer_id=order.customer_id,
        state=state_to_pb(order.state),
        version=order.version,
        cancel_reason=order.cancel_reason,
        payment_id=order.payment_id,
        total=money_to_pb(order.total),
        refund_state=refund_state_to_pb(order.refund_state),
        cancelled_by=actor_to_pb(order.cancelled_by),
    )
    return OutboxEvent.of(event, event_id=event_id, aggregate_id=order.order_id)


def _order_cancelled(order: Order) -> OutboxEvent:
    event_id = derived_id("OrderCancelled", order.order_id)
    event = events_pb2.OrderCancelled(
        event_id=event_id,
        occur_time=timestamp(order.update_time),
        order_id=order.order_id,
        customer_id=order.customer_id,
        reason=order.cancel_reason,
        total=money_to_pb(order.total),
    )
    return OutboxEvent.of(event, event_id=event_id, aggregate_id=order.order_id)


def _refund_requested(order: Order) -> OutboxEvent:
    event_id = derived_id("RefundRequested", order.order_id, order.payment_id)
    event = events_pb2.RefundRequested(
        event_id=event_id,
        occur_time=timestamp(order.update_time),
        order_id=order.order_id,
        customer_id=order.customer_id,
        payment_id=order.payment_id,
        amount=money_to_pb(order.total),
        reason="the payment succeeded after the customer had cancelled the order",
    )
    return OutboxEvent.of(event, event_id=event_id, aggregate_id=order.order_id)


def events_for(order: Order, before: Order | None = None) -> list[OutboxEvent]:
    """The events an order owes after being created (version 1) or changed from ``before``."""
    if order.version == 1:
        return [_order_created(order), _order_changed(order)]
    events = [_order_changed(order)]
    was = before if before is not None else order
    if order.cancelled_by is StepActor.CUSTOMER and was.cancelled_by is not StepActor.CUSTOMER:
        events.append(_order_cancelled(order))
    if order.refund_state is RefundState.PENDING and was.refund_state is not RefundState.PENDING:
        events.append(_refund_requested(order))
    return events
