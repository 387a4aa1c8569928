"""Inbound messaging of payment_svc: OrderCreated → charge."""

from __future__ import annotations

from orders.v1 import events_pb2 as order_events

from chassis.bus import Envelope, PermanentError
from payment_svc.convert import charge_request_from_pb
from payment_svc.usecases import PaymentUseCases

__all__ = ["ORDER_CREATED_SUBJECT", "OrderCreatedHandler"]

ORDER_CREATED_SUBJECT = "orders.created"


class OrderCreatedHandler:
    """Charges the order an OrderCreated announces."""

    def __init__(self, usecases: PaymentUseCases) -> None:
        self._usecases = usecases

    async def __call__(self, envelope: Envelope) -> None:
        event = envelope.decode(order_events.OrderCreated)
        if not event.order_id or not event.HasField("total"):
            raise PermanentError(f"OrderCreated {envelope.event_id} lacks order_id or total")
        envelope.log_consumed(event.order_id)
        await self._usecases.charge(charge_request_from_pb(event))
