"""Composition root of notification_svc: wires store, mailer, bus, use cases and servicer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from notifications.v1 import notifications_pb2, notifications_pb2_grpc

from chassis.bus import Bus
from chassis.server import ServiceBinding
from chassis.service import Components, choose_store, run
from notification_svc.config import NotificationSettings
from notification_svc.consumers import order_changes_handler
from notification_svc.grpc_api import NotificationApi
from notification_svc.mailer import SmtpMailer
from notification_svc.store import MongoNotificationStore, NotificationStore, SqliteNotificationStore
from notification_svc.usecases import NotificationUseCases

__all__ = ["builder", "main"]

NAME = "notification_svc"


def builder(settings: NotificationSettings) -> Callable[[Bus], Awaitable[Components]]:
    async def build(bus: Bus) -> Components:
        store: NotificationStore
        store, closers = choose_store(settings, NAME, sqlite=SqliteNotificationStore, mongo=MongoNotificationStore)
        await store.open()
        mailer = (
            SmtpMailer(settings.smtp_host, settings.smtp_port, settings.smtp_sender, settings.smtp_recipient_domain)
            if settings.smtp_host
            else None
        )
        usecases = NotificationUseCases(store, mailer)
        consumer = bus.consumer(
            handler=order_changes_handler(usecases),
            max_deliver=settings.max_deliver,
            max_in_flight=settings.fetch_batch,
            ack_wait=settings.ack_wait_seconds,
        )
        service = notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
        return Components(
            grpc_services=[
                ServiceBinding(
                    notifications_pb2_grpc.add_NotificationServiceServicer_to_server,
                    NotificationApi(usecases),
                    service,
                )
            ],
            consumers=[consumer],
            background=[usecases.run_delivery] if mailer is not None else [],
            closers=[store.close, *closers],
        )

    return build


def main() -> None:
    settings = NotificationSettings()
    run(NAME, settings, builder(settings))
