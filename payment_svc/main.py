"""Composition root of payment_svc: wires store, provider, bus, use cases and servicer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from payments.v1 import events_pb2 as payment_events
from payments.v1 import payments_pb2, payments_pb2_grpc

from chassis.bus import Bus
from chassis.outbox import OutboxRelay
from chassis.server import ServiceBinding
from chassis.service import Components, choose_store, run
from payment_svc.config import PaymentSettings
from payment_svc.consumers import order_events_handler
from payment_svc.grpc_api import PaymentApi
from payment_svc.provider import MockPaymentProvider
from payment_svc.store import MongoPaymentStore, PaymentStore, SqlitePaymentStore
from payment_svc.usecases import PaymentUseCases

__all__ = ["builder", "main"]

NAME = "payment_svc"


def builder(settings: PaymentSettings) -> Callable[[Bus], Awaitable[Components]]:
    async def build(bus: Bus) -> Components:
        store: PaymentStore
        store, closers = choose_store(settings, NAME, sqlite=SqlitePaymentStore, mongo=MongoPaymentStore)
        await store.open()
        relay = OutboxRelay(store.outbox, bus, aggregate_name="order_id")
        bus.declare(payment_events.PaymentSuccessful)
        provider = MockPaymentProvider(settings.decline_rate, settings.latency_ms / 1000, settings.seed)
        usecases = PaymentUseCases(store, provider, on_commit=relay.notify)
        consumer = bus.consumer(
            handler=order_events_handler(usecases),
            max_deliver=settings.max_deliver,
            max_in_flight=settings.fetch_batch,
            ack_wait=settings.ack_wait_seconds,
        )
        service = payments_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name
        return Components(
            grpc_services=[
                ServiceBinding(payments_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentApi(usecases), service)
            ],
            consumers=[consumer],
            relays=[relay],
            closers=[store.close, *closers],
        )

    return build


def main() -> None:
    settings = PaymentSettings()
    run(NAME, settings, builder(settings))
