"""Composition root of order_svc: wires store, bus, use cases and servicer (nothing runs at import)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from orders.v1 import events_pb2 as order_events
from orders.v1 import orders_pb2, orders_pb2_grpc

from chassis.auth import JwksKeys, TokenVerifier
from chassis.bus import Bus
from chassis.logging import get_logger
from chassis.outbox import OutboxRelay
from chassis.server import ServiceBinding
from chassis.service import Components, choose_store, run
from order_svc.config import OrderSettings
from order_svc.consumers import NatsChangeFeed, payment_events_handler
from order_svc.grpc_api import Authenticator, OrderApi
from order_svc.metrics import CountingOrderStore
from order_svc.store import MongoOrderStore, OrderStore, SqliteOrderStore
from order_svc.usecases import OrderUseCases

__all__ = ["builder", "main"]

NAME = "order_svc"
log = get_logger(__name__)


def authenticator(settings: OrderSettings) -> Authenticator:
    """Token checking as the settings say; switching it off is loud."""
    if settings.insecure_no_auth:
        log.warning("ORDER_SVC_INSECURE_NO_AUTH is set: no token is checked, any caller may act as anyone")
        return Authenticator(None, settings.oidc_admin_role)
    keys = JwksKeys(url=settings.jwks_source if settings.oidc_jwks_file is None else "", file=settings.oidc_jwks_file)
    verifier = TokenVerifier(
        keys,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        leeway_seconds=settings.oidc_leeway_seconds,
        roles_claim=settings.oidc_roles_claim,
    )
    log.info("tokens verified", issuer=settings.oidc_issuer, audience=settings.oidc_audience)
    return Authenticator(verifier, settings.oidc_admin_role)


def builder(settings: OrderSettings) -> Callable[[Bus], Awaitable[Components]]:
    async def build(bus: Bus) -> Components:
        store: OrderStore
        store, closers = choose_store(settings, NAME, sqlite=SqliteOrderStore, mongo=MongoOrderStore)
        store = CountingOrderStore(store)  # orders_total{state}, counted as the changes commit
        await store.open()
        relay = OutboxRelay(store.outbox, bus, aggregate_name="order_id")
        bus.declare(order_events.OrderCreated)
        usecases = OrderUseCases(store, NatsChangeFeed(bus), on_commit=relay.notify)
        consumer = bus.consumer(
            handler=payment_events_handler(usecases),
            max_deliver=settings.max_deliver,
            max_in_flight=settings.fetch_batch,
            ack_wait=settings.ack_wait_seconds,
        )
        service = orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
        return Components(
            grpc_services=[
                ServiceBinding(
                    orders_pb2_grpc.add_OrderServiceServicer_to_server,
                    OrderApi(usecases, authenticator(settings)),
                    service,
                )
            ],
            consumers=[consumer],
            relays=[relay],
            closers=[store.close, *closers],
        )

    return build


def main() -> None:
    settings = OrderSettings()
    run(NAME, settings, builder(settings))
