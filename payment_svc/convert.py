"""Translation between payment domain objects and their protobuf messages."""

from __future__ import annotations

from orders.v1 import events_pb2 as order_events
from payments.v1 import payments_pb2

from chassis.convert import money_from_pb, money_to_pb, timestamp
from payment_svc.domain import ChargeRequest, Payment, PaymentStatus

__all__ = ["cancel_request_from_pb", "charge_request_from_pb", "payment_to_pb"]

_STATUS = {
    PaymentStatus.PENDING: payments_pb2.PAYMENT_STATUS_PENDING,
    PaymentStatus.SUCCEEDED: payments_pb2.PAYMENT_STATUS_SUCCEEDED,
    PaymentStatus.DECLINED: payments_pb2.PAYMENT_STATUS_DECLINED,
    PaymentStatus.REFUNDED: payments_pb2.PAYMENT_STATUS_REFUNDED,
    PaymentStatus.VOIDED: payments_pb2.PAYMENT_STATUS_VOIDED,
}


def charge_request_from_pb(event: order_events.OrderCreated) -> ChargeRequest:
    return ChargeRequest(
        order_id=event.order_id,
        customer_id=event.customer_id,
        amount=money_from_pb(event.total),
        payment_method=event.payment_method,
    )


def cancel_request_from_pb(event: order_events.OrderCancelled) -> ChargeRequest:
    """What a cancel asks to call off (the charge it would have made)."""
    return ChargeRequest(
        order_id=event.order_id,
        customer_id=event.customer_id,
        amount=money_from_pb(event.total),
        payment_method="",
    )


def payment_to_pb(payment: Payment) -> payments_pb2.Payment:
    return payments_pb2.Payment(
        name=f"payments/{payment.payment_id}",
        payment_id=payment.payment_id,
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        amount=money_to_pb(payment.amount),
        payment_method=payment.payment_method,
        status=_STATUS[payment.status],
        decline_code=payment.decline_code,
        decline_reason=payment.decline_reason,
        create_time=timestamp(payment.create_time),
        refund_time=timestamp(payment.refund_time) if payment.refund_time else None,
    )
