"""Inbound messaging of payment_svc: OrderCreated → charge."""

from __future__ import annotations

from orders.v1 import events_pb2 as order_events

from chassis.delivery import Dispatch, Envelope, PermanentError
from payment_svc.convert import charge_request_from_pb
from payment_svc.usecases import PaymentUseCases

__all__ = ["order_events_handler"]


def order_events_handler(usecases: PaymentUseCases) -> Dispatch:
    """Charges the order an OrderCreated announces."""

    async def created(event: order_events.OrderCreated, envelope: Envelope) -> None:
        if not event.order_id or not event.HasField("total"):
            raise PermanentError(f"OrderCreated {envelope.event_id} lacks order_id or total")
        envelope.log_consumed(order_id=event.order_id)
        await usecases.charge(charge_request_from_pb(event))

    return Dispatch().on(order_events.OrderCreated, created)
