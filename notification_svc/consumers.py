"""Inbound messaging of notification_svc: every change of an order → the notifications its state confirms."""

from __future__ import annotations

from orders.v1 import events_pb2 as order_events

from chassis.delivery import Dispatch, Envelope, PermanentError
from notification_svc.convert import outcome_from_pb
from notification_svc.usecases import NotificationUseCases

__all__ = ["order_changes_handler"]


def order_changes_handler(usecases: NotificationUseCases) -> Dispatch:
    """Tells the customer what an order's state confirms (paid, cancelled, payment failed, refunded)."""

    async def changed(event: order_events.OrderStateChanged, envelope: Envelope) -> None:
        if not event.order_id or not event.customer_id:
            raise PermanentError(f"OrderStateChanged {envelope.event_id} lacks order_id or customer_id")
        envelope.log_consumed(order_id=event.order_id)
        await usecases.notify(outcome_from_pb(event), envelope.event_id)

    return Dispatch().on(order_events.OrderStateChanged, changed)
