"""Outbound events of payment_svc: a payment → PaymentSuccessful or PaymentFailed → outbox entry."""

from __future__ import annotations

from payments.v1 import events_pb2

from chassis.convert import money_to_pb, timestamp
from chassis.ids import derived_id
from chassis.outbox import OutboxEvent
from payment_svc.domain import Payment, PaymentStatus

__all__ = ["outcome_event", "refunded_event", "voided_event"]


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


def voided_event(payment: Payment) -> OutboxEvent:
    """The event of a payment called off before any charge."""
    event_id = derived_id("PaymentVoided", payment.order_id)
    event = events_pb2.PaymentVoided(
        event_id=event_id,
        occur_time=timestamp(payment.create_time),
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        payment_id=payment.payment_id,
    )
    return OutboxEvent.of(event, event_id=event_id, aggregate_id=payment.order_id)


def refunded_event(payment: Payment) -> OutboxEvent:
    """The event of a charge refunded (one per payment: its id derives from the payment)."""
    event_id = derived_id("PaymentRefunded", payment.payment_id)
    event = events_pb2.PaymentRefunded(
        event_id=event_id,
        occur_time=timestamp(payment.refund_time or payment.create_time),
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        payment_id=payment.payment_id,
        amount=money_to_pb(payment.amount),
    )
    return OutboxEvent.of(event, event_id=event_id, aggregate_id=payment.order_id)
