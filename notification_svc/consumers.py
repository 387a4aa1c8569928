"""Inbound messaging of notification_svc: PaymentSuccessful / PaymentFailed → notify."""

from __future__ import annotations

from payments.v1 import events_pb2 as payment_events

from chassis.bus import Envelope, PermanentError
from notification_svc.convert import result_from_failed, result_from_successful
from notification_svc.usecases import NotificationUseCases

__all__ = ["PAYMENT_SUBJECTS", "PaymentEventHandler"]

PAYMENT_SUBJECTS = ["payments.succeeded", "payments.failed"]


class PaymentEventHandler:
    """Records the notification a payment outcome calls for."""

    def __init__(self, usecases: NotificationUseCases) -> None:
        self._usecases = usecases

    async def __call__(self, envelope: Envelope) -> None:
        event = envelope.decode_any(payment_events.PaymentSuccessful, payment_events.PaymentFailed)
        if isinstance(event, payment_events.PaymentSuccessful):
            result = result_from_successful(event)
        else:
            assert isinstance(event, payment_events.PaymentFailed)
            result = result_from_failed(event)
        if not result.order_id or not result.customer_id:
            raise PermanentError(f"{envelope.event_type} {envelope.event_id} lacks order_id or customer_id")
        envelope.log_consumed(result.order_id)
        await self._usecases.notify(result, envelope.event_id)
