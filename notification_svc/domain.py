"""Notification rules: one notification per order outcome and what it says (pure: no I/O, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chassis.ids import derived_id
from chassis.money import Money

__all__ = ["Notification", "NotificationKind", "OrderOutcome", "notifications_for"]


class NotificationKind(StrEnum):
    """What a notification tells the customer."""

    ORDER_PAID = "ORDER_PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_REFUNDED = "ORDER_REFUNDED"


@dataclass(frozen=True)
class OrderOutcome:
    """An order as its latest change shows it: what the customer may be told is only what this confirms."""

    order_id: str
    customer_id: str
    total: Money
    paid: bool = False
    cancelled: bool = False
    cancelled_by_customer: bool = False
    cancel_reason: str = ""
    refunded: bool = False


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


def _message(kind: NotificationKind, outcome: OrderOutcome) -> str:
    order = outcome.order_id
    if kind is NotificationKind.ORDER_PAID:
        return f"Your order {order} is paid: {outcome.total}. Thank you!"
    if kind is NotificationKind.PAYMENT_FAILED:
        reason = outcome.cancel_reason.removeprefix("payment failed: ") or "the payment was declined"
        return f"Your order {order} was cancelled because the payment failed: {reason}"
    if kind is NotificationKind.ORDER_CANCELLED:
        return f"Your order {order} was cancelled: {outcome.cancel_reason or 'as you asked'}."
    return f"Your order {order} was refunded: {outcome.total}."


def notifications_for(outcome: OrderOutcome, event_id: str, now: datetime) -> list[Notification]:
    """Every notification this state of the order confirms, each once per (order, kind) by its derived id.

    Paid → "paid"; cancelled by the customer → "cancelled", then "refunded" once the refund is done;
    cancelled by a failed payment → "payment failed". A cancelled order is never told it was paid.
    """
    kinds: list[NotificationKind] = []
    if outcome.paid:
        kinds.append(NotificationKind.ORDER_PAID)
    elif outcome.cancelled:
        kinds.append(
            NotificationKind.ORDER_CANCELLED if outcome.cancelled_by_customer else NotificationKind.PAYMENT_FAILED
        )
        if outcome.refunded:
            kinds.append(NotificationKind.ORDER_REFUNDED)
    return [
        Notification(
            notification_id=derived_id("notification", outcome.order_id, kind.value),
            order_id=outcome.order_id,
            customer_id=outcome.customer_id,
            kind=kind,
            message=_message(kind, outcome),
            event_id=event_id,
            create_time=now,
        )
        for kind in kinds
    ]
