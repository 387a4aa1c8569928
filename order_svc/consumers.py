"""Inbound messaging of order_svc: payment events → use case, and the change feed WatchOrder follows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.msg import Msg
from payments.v1 import events_pb2 as payment_events

from chassis.bus import Bus
from chassis.convert import money_from_pb
from chassis.delivery import Dispatch, Envelope, PermanentError
from order_svc.domain import PaymentOutcome, PaymentResult
from order_svc.events import changed_subject
from order_svc.usecases import OrderUseCases

__all__ = ["NatsChangeFeed", "payment_events_handler"]


def payment_events_handler(usecases: OrderUseCases) -> Dispatch:
    """Applies what the payment step reports (charged, declined, voided, refunded) to the order."""

    async def apply(outcome: PaymentOutcome, envelope: Envelope) -> None:
        if not outcome.order_id or not outcome.payment_id:
            raise PermanentError(f"{envelope.event_type} {envelope.event_id} lacks order_id or payment_id")
        envelope.log_consumed(order_id=outcome.order_id)
        await usecases.apply_payment(outcome)

    async def succeeded(event: payment_events.PaymentSuccessful, envelope: Envelope) -> None:
        amount = money_from_pb(event.amount)
        await apply(PaymentOutcome(event.order_id, event.payment_id, PaymentResult.SUCCEEDED, f"{amount}"), envelope)

    async def failed(event: payment_events.PaymentFailed, envelope: Envelope) -> None:
        outcome = PaymentOutcome(event.order_id, event.payment_id, PaymentResult.DECLINED, event.decline_reason)
        await apply(outcome, envelope)

    async def voided(event: payment_events.PaymentVoided, envelope: Envelope) -> None:
        await apply(PaymentOutcome(event.order_id, event.payment_id, PaymentResult.VOIDED), envelope)

    async def refunded(event: payment_events.PaymentRefunded, envelope: Envelope) -> None:
        amount = money_from_pb(event.amount)
        outcome = PaymentOutcome(event.order_id, event.payment_id, PaymentResult.REFUNDED, f"{amount} refunded")
        await apply(outcome, envelope)

    return (
        Dispatch()
        .on(payment_events.PaymentSuccessful, succeeded)
        .on(payment_events.PaymentFailed, failed)
        .on(payment_events.PaymentVoided, voided)
        .on(payment_events.PaymentRefunded, refunded)
    )


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
