"""Notification rules: one notification per order outcome and what it says (pure: no I/O, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chassis.ids import derived_id
from chassis.money import Money

__all__ = ["Notification", "NotificationKind", "PaymentResult", "notification_for"]


class NotificationKind(StrEnum):
    """What a notification tells the customer."""

    ORDER_PAID = "ORDER_PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"


@dataclass(frozen=True)
class PaymentResult:
    """The outcome of an order's payment, as the payment events carry it."""

    order_id: str
    customer_id: str
    succeeded: bool
    amount: Money
    decline_reason: str = ""


@dataclass(frozen=True)
class Notification:
    """A message to a customer about an order's outcome."""

    notification_id: str
    order_id: str
    customer_id: str
    kind: NotificationKind
    message: str
    event_id: str
    create_time: datetime


def notification_for(result: PaymentResult, event_id: str, now: datetime) -> Notification:
    """The notification an outcome deserves; its id derives from (order, kind), so a repeat is the same one."""
    if result.succeeded:
        kind = NotificationKind.ORDER_PAID
        message = f"Your order {result.order_id} is paid: {result.amount}. Thank you!"
    else:
        kind = NotificationKind.PAYMENT_FAILED
        reason = result.decline_reason or "the payment was declined"
        message = f"Your order {result.order_id} was cancelled because the payment failed: {reason}"
    return Notification(
        notification_id=derived_id("notification", result.order_id, kind.value),
        order_id=result.order_id,
        customer_id=result.customer_id,
        kind=kind,
        message=message,
        event_id=event_id,
        create_time=now,
    )
