"""Inbound messaging of notification_svc: PaymentSuccessful / PaymentFailed → notify."""

from __future__ import annotations

from payments.v1 import events_pb2 as payment_events

from chassis.delivery import Dispatch, Envelope, PermanentError
from notification_svc.convert import result_from_failed, result_from_successful
from notification_svc.domain import PaymentResult
from notification_svc.usecases import NotificationUseCases

__all__ = ["payment_events_handler"]


def payment_events_handler(usecases: NotificationUseCases) -> Dispatch:
    """Records the notification a payment outcome calls for."""

    async def notify(result: PaymentResult, envelope: Envelope) -> None:
        if not result.order_id or not result.customer_id:
            raise PermanentError(f"{envelope.event_type} {envelope.event_id} lacks order_id or customer_id")
        envelope.log_consumed(order_id=result.order_id)
        await usecases.notify(result, envelope.event_id)

    async def succeeded(event: payment_events.PaymentSuccessful, envelope: Envelope) -> None:
        await notify(result_from_successful(event), envelope)

    async def failed(event: payment_events.PaymentFailed, envelope: Envelope) -> None:
        await notify(result_from_failed(event), envelope)

    return Dispatch().on(payment_events.PaymentSuccessful, succeeded).on(payment_events.PaymentFailed, failed)
