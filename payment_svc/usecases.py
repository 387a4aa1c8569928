"""What payment_svc does: charge each created order exactly once, and answer queries; the ports it needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from chassis.ids import derived_id, utc_now
from chassis.logging import get_logger
from chassis.paging import fetch_page
from chassis.timefmt import format_time
from payment_svc.domain import ChargeRequest, Decision, Payment, PaymentNotFound, record_payment
from payment_svc.events import outcome_event
from payment_svc.store import PaymentStore

__all__ = ["PaymentProvider", "PaymentUseCases"]

log = get_logger(__name__)


class PaymentProvider(Protocol):
    """A card processor; ``idempotency_key`` lets it recognise a retried charge."""

    async def charge(self, request: ChargeRequest, idempotency_key: str) -> Decision: ...


class PaymentUseCases:
    """The application service of payment_svc."""

    def __init__(
        self,
        store: PaymentStore,
        provider: PaymentProvider,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._provider = provider
        self._on_commit = on_commit
        self._clock = clock

    async def charge(self, request: ChargeRequest) -> Payment:
        """Charge an order once: a repeat returns the payment already taken.

        The payment id derives from the order id and is the provider's idempotency key, so two
        replicas racing on one order charge it once and store one payment (the store's unique key).
        """
        existing = await self._store.get_by_order(request.order_id)
        if existing is not None:
            log.info(
                "order already charged, nothing to do",
                order_id=request.order_id,
                payment_id=existing.payment_id,
            )
            return existing
        payment_id = derived_id("payment", request.order_id)
        decision = await self._provider.charge(request, idempotency_key=payment_id)
        payment = record_payment(request, decision, payment_id, self._clock())
        saved, created = await self._store.create(payment, [outcome_event(payment)])
        if created:
            self._on_commit()
            log.info(
                "payment recorded",
                order_id=payment.order_id,
                payment_id=payment.payment_id,
                status=payment.status.value,
                amount=str(payment.amount),
                decline_reason=payment.decline_reason or None,
            )
        return saved

    async def get(self, order_id: str) -> Payment:
        payment = await self._store.get_by_order(order_id) if order_id else None
        if payment is None:
            raise PaymentNotFound(order_id)
        return payment

    async def list(self, customer_id: str, size: int, token: str) -> tuple[list[Payment], str]:
        return await fetch_page(
            lambda limit, after: self._store.page(customer_id, limit, after),
            size=size,
            token=token,
            scope=customer_id,
            cursor_of=lambda p: (format_time(p.create_time), p.payment_id),
        )
