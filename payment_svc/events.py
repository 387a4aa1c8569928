"""Outbound events of payment_svc: a payment → PaymentSuccessful or PaymentFailed → outbox entry."""

from __future__ import annotations

from payments.v1 import events_pb2

from chassis.convert import money_to_pb, timestamp
from chassis.ids import derived_id
from chassis.outbox import OutboxEvent
from payment_svc.domain import Payment, PaymentStatus

__all__ = ["outcome_event"]


def outcome_event(payment: Payment) -> OutboxEvent:
    """The one event a payment owes: its outcome."""
    event_id = derived_id("PaymentOutcome", payment.order_id)
    common = {
        "event_id": event_id,
        "occur_time": timestamp(payment.create_time),
        "order_id": payment.order_id,
        "customer_id": payment.customer_id,
        "payment_id": payment.payment_id,
        "amount": money_to_pb(payment.amount),
    }
    if payment.status is PaymentStatus.SUCCEEDED:
        return OutboxEvent.of(events_pb2.PaymentSuccessful(**common), event_id=event_id, aggregate_id=payment.order_id)
    failed = events_pb2.PaymentFailed(
        **common, decline_code=payment.decline_code, decline_reason=payment.decline_reason
    )
    return OutboxEvent.of(failed, event_id=event_id, aggregate_id=payment.order_id)
