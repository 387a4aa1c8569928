"""Inbound messaging of notification_svc: PaymentSuccessful / PaymentFailed → notify."""

from __future__ import annotations

from payments.v1 import events_pb2 as payment_events

from chassis.bus import Envelope, PermanentError
from chassis.logging import get_logger
from notification_svc.convert import result_from_failed, result_from_successful
from notification_svc.usecases import NotificationUseCases

__all__ = ["PAYMENT_SUBJECTS", "PaymentEventHandler"]

log = get_logger(__name__)
PAYMENT_SUBJECTS = ["payments.succeeded", "payments.failed"]


class PaymentEventHandler:
    """Records the notification a payment outcome calls for."""

    def __init__(self, usecases: NotificationUseCases) -> None:
        self._usecases = usecases

    async def __call__(self, envelope: Envelope) -> None:
        if envelope.event_type == payment_events.PaymentSuccessful.DESCRIPTOR.full_name:
            result = result_from_successful(envelope.decode(payment_events.PaymentSuccessful))
        elif envelope.event_type == payment_events.PaymentFailed.DESCRIPTOR.full_name:
            result = result_from_failed(envelope.decode(payment_events.PaymentFailed))
        else:
            raise PermanentError(f"notification_svc does not handle event type {envelope.event_type!r}")
        if not result.order_id or not result.customer_id:
            raise PermanentError(f"{envelope.event_type} {envelope.event_id} lacks order_id or customer_id")
        log.info(
            "event consumed",
            event_type=envelope.event_type,
            event_id=envelope.event_id,
            order_id=result.order_id,
            attempt=envelope.num_delivered,
        )
        await self._usecases.notify(result, envelope.event_id)
