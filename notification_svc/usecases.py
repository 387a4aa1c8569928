"""What notification_svc does: record one notification per order outcome, deliver it, list them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from chassis.ids import utc_now
from chassis.logging import get_logger
from chassis.paging import fetch_page
from chassis.timefmt import format_time
from notification_svc.domain import Notification, OrderOutcome, notifications_for
from notification_svc.store import NotificationStore

__all__ = ["Mailer", "NotificationUseCases"]

log = get_logger(__name__)


class Mailer(Protocol):
    """Delivers a notification to its customer (e.g. by SMTP)."""

    async def send(self, notification: Notification) -> None: ...


class NotificationUseCases:
    """The application service of notification_svc."""

    def __init__(
        self,
        store: NotificationStore,
        mailer: Mailer | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._clock = clock
        self._wake = asyncio.Event()

    async def notify(self, outcome: OrderOutcome, event_id: str) -> list[Notification]:
        """Record the notifications an order's state confirms; one already recorded is not recorded again."""
        recorded = []
        for notification in notifications_for(outcome, event_id, self._clock()):
            if await self._store.add(notification):
                recorded.append(notification)
                log.info(
                    "notification recorded",
                    order_id=notification.order_id,
                    customer_id=notification.customer_id,
                    kind=notification.kind.value,
                    message=notification.message,
                )
        if recorded:
            self._wake.set()
        return recorded

    async def list(self, order_id: str, customer_id: str, size: int, token: str) -> tuple[list[Notification], str]:
        return await fetch_page(
            lambda limit, after: self._store.page(order_id, customer_id, limit, after),
            size=size,
            token=token,
            scope=f"{order_id}\x1f{customer_id}",
            cursor_of=lambda n: (format_time(n.create_time), n.notification_id),
        )

    async def deliver_pending(self) -> int:
        """E-mail what is not yet delivered (at least once: a crash between send and mark resends)."""
        if self._mailer is None:
            return 0
        pending = await self._store.pending_deliveries(50)
        for notification in pending:
            await self._mailer.send(notification)
            await self._store.mark_delivered(notification.notification_id)
            log.info("notification e-mailed", order_id=notification.order_id, kind=notification.kind.value)
        return len(pending)

    async def run_delivery(self, stop: asyncio.Event) -> None:
        """Background job: deliver on every new notification, retrying with backoff when the mailer fails."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                delivered = await self.deliver_pending()
                failures = 0
            except Exception as error:
                failures += 1
                log.warning("e-mail delivery failed, will retry", error=repr(error))
                delivered = 0
            if delivered:
                continue
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            timeout = min(0.5 * 2**failures, 30.0) if failures else 5.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
