"""Translation between notification domain objects and protobuf messages."""

from __future__ import annotations

from notifications.v1 import notifications_pb2
from orders.v1 import events_pb2 as order_events
from orders.v1 import orders_pb2

from chassis.convert import money_from_pb, timestamp
from notification_svc.domain import Notification, NotificationKind, OrderOutcome

__all__ = ["notification_to_pb", "outcome_from_pb"]

_KINDS = {
    NotificationKind.ORDER_PAID: notifications_pb2.NOTIFICATION_KIND_ORDER_PAID,
    NotificationKind.PAYMENT_FAILED: notifications_pb2.NOTIFICATION_KIND_PAYMENT_FAILED,
    NotificationKind.ORDER_CANCELLED: notifications_pb2.NOTIFICATION_KIND_ORDER_CANCELLED,
    NotificationKind.ORDER_REFUNDED: notifications_pb2.NOTIFICATION_KIND_ORDER_REFUNDED,
}


def outcome_from_pb(event: order_events.OrderStateChanged) -> OrderOutcome:
    return OrderOutcome(
        order_id=event.order_id,
        customer_id=event.customer_id,
        total=money_from_pb(event.total),
        paid=event.state == orders_pb2.ORDER_STATE_PAID,
        cancelled=event.state == orders_pb2.ORDER_STATE_CANCELLED,
        cancelled_by_customer=event.cancelled_by == orders_pb2.ACTOR_CUSTOMER,
        cancel_reason=event.cancel_reason,
        refunded=event.refund_state == orders_pb2.REFUND_STATE_REFUNDED,
    )


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
