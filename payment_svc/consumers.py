"""Inbound messaging of payment_svc: OrderCreated → charge, OrderCancelled → void, RefundRequested → refund."""

from __future__ import annotations

from orders.v1 import events_pb2 as order_events

from chassis.delivery import Dispatch, Envelope, PermanentError
from payment_svc.convert import cancel_request_from_pb, charge_request_from_pb
from payment_svc.usecases import PaymentUseCases

__all__ = ["order_events_handler"]


def order_events_handler(usecases: PaymentUseCases) -> Dispatch:
    """Charges created orders, voids cancelled ones not yet charged, refunds what order_svc says is owed."""

    async def created(event: order_events.OrderCreated, envelope: Envelope) -> None:
        if not event.order_id or not event.HasField("total"):
            raise PermanentError(f"OrderCreated {envelope.event_id} lacks order_id or total")
        envelope.log_consumed(order_id=event.order_id)
        await usecases.charge(charge_request_from_pb(event))

    async def cancelled(event: order_events.OrderCancelled, envelope: Envelope) -> None:
        if not event.order_id:
            raise PermanentError(f"OrderCancelled {envelope.event_id} lacks order_id")
        envelope.log_consumed(order_id=event.order_id)
        await usecases.void(cancel_request_from_pb(event))

    async def refund(event: order_events.RefundRequested, envelope: Envelope) -> None:
        if not event.order_id or not event.payment_id:
            raise PermanentError(f"RefundRequested {envelope.event_id} lacks order_id or payment_id")
        envelope.log_consumed(order_id=event.order_id)
        await usecases.refund(event.order_id, event.payment_id)

    return (
        Dispatch()
        .on(order_events.OrderCreated, created)
        .on(order_events.OrderCancelled, cancelled)
        .on(order_events.RefundRequested, refund)
    )
