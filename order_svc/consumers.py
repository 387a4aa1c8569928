"""Inbound messaging of order_svc: payment events → use case, and the change feed WatchOrder follows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.msg import Msg
from payments.v1 import events_pb2 as payment_events

from chassis.bus import Bus, Envelope, PermanentError
from chassis.logging import get_logger
from order_svc.domain import PaymentOutcome
from order_svc.events import changed_subject
from order_svc.usecases import OrderUseCases

__all__ = ["PAYMENT_SUBJECTS", "NatsChangeFeed", "PaymentEventHandler"]

log = get_logger(__name__)
PAYMENT_SUBJECTS = ["payments.succeeded", "payments.failed"]


class PaymentEventHandler:
    """Applies PaymentSuccessful / PaymentFailed to the order they settle."""

    def __init__(self, usecases: OrderUseCases) -> None:
        self._usecases = usecases

    async def __call__(self, envelope: Envelope) -> None:
        if envelope.event_type == payment_events.PaymentSuccessful.DESCRIPTOR.full_name:
            ok = envelope.decode(payment_events.PaymentSuccessful)
            outcome = PaymentOutcome(ok.order_id, ok.payment_id, succeeded=True)
        elif envelope.event_type == payment_events.PaymentFailed.DESCRIPTOR.full_name:
            failed = envelope.decode(payment_events.PaymentFailed)
            outcome = PaymentOutcome(failed.order_id, failed.payment_id, False, failed.decline_reason)
        else:
            raise PermanentError(f"order_svc does not handle event type {envelope.event_type!r}")
        if not outcome.order_id or not outcome.payment_id:
            raise PermanentError(f"{envelope.event_type} {envelope.event_id} lacks order_id or payment_id")
        log.info(
            "event consumed",
            event_type=envelope.event_type,
            event_id=envelope.event_id,
            order_id=outcome.order_id,
            attempt=envelope.num_delivered,
        )
        await self._usecases.apply_payment(outcome)


class _EventSignal:
    def __init__(self) -> None:
        self.fired = asyncio.Event()

    async def callback(self, _msg: Msg) -> None:
        self.fired.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.fired.wait(), timeout)
        self.fired.clear()


class NatsChangeFeed:
    """Follows ``orders.changed.<id>`` on NATS, so a watcher sees changes made by any replica."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    @asynccontextmanager
    async def subscribe(self, order_id: str) -> AsyncIterator[_EventSignal]:
        signal = _EventSignal()
        subscription = None
        if self._bus.connected.is_set():
            subscription = await self._bus.nc.subscribe(changed_subject(order_id), cb=signal.callback)
        try:
            yield signal
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
