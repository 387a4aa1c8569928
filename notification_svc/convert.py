"""Translation between notification domain objects and protobuf messages."""

from __future__ import annotations

from notifications.v1 import notifications_pb2
from payments.v1 import events_pb2 as payment_events

from chassis.convert import money_from_pb, timestamp
from notification_svc.domain import Notification, NotificationKind, PaymentResult

__all__ = ["notification_to_pb", "result_from_failed", "result_from_successful"]

_KINDS = {
    NotificationKind.ORDER_PAID: notifications_pb2.NOTIFICATION_KIND_ORDER_PAID,
    NotificationKind.PAYMENT_FAILED: notifications_pb2.NOTIFICATION_KIND_PAYMENT_FAILED,
}


def result_from_successful(event: payment_events.PaymentSuccessful) -> PaymentResult:
    return PaymentResult(event.order_id, event.customer_id, True, money_from_pb(event.amount))


def result_from_failed(event: payment_events.PaymentFailed) -> PaymentResult:
    return PaymentResult(event.order_id, event.customer_id, False, money_from_pb(event.amount), event.decline_reason)


def notification_to_pb(notification: Notification) -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        name=f"notifications/{notification.notification_id}",
        notification_id=notification.notification_id,
        order_id=notification.order_id,
        customer_id=notification.customer_id,
        kind=_KINDS[notification.kind],
        message=notification.message,
        event_id=notification.event_id,
        create_time=timestamp(notification.create_time),
    )
