"""What payment_svc does: charge each order once, void or refund it when cancelled, answer queries; its ports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from chassis.ids import derived_id, utc_now
from chassis.logging import get_logger
from chassis.paging import fetch_page
from chassis.timefmt import format_time
from payment_svc.domain import (
    ChargeRequest,
    Decision,
    Payment,
    PaymentNotFound,
    PaymentStatus,
    pending_payment,
    record_payment,
    voided_payment,
)
from payment_svc.events import outcome_event, refunded_event, voided_event
from payment_svc.store import PaymentStore

__all__ = ["PaymentProvider", "PaymentUseCases"]

log = get_logger(__name__)


class PaymentProvider(Protocol):
    """A card processor; ``idempotency_key`` lets it recognise a retried charge or refund."""

    async def charge(self, request: ChargeRequest, idempotency_key: str) -> Decision: ...

    async def refund(self, payment: Payment, idempotency_key: str) -> None: ...


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
        """Charge an order once: a repeat returns the payment already taken; a voided order is never charged.

        A PENDING payment is saved before the provider is called, so a cancel knows a charge is under
        way. The payment id derives from the order id and is the provider's idempotency key, so two
        replicas (or a redelivery after a crash) racing on one order charge it once, and the outcome is
        saved once (the update is guarded by the PENDING status).
        """
        payment_id = derived_id("payment", request.order_id)
        reserved, created = await self._store.create(pending_payment(request, payment_id, self._clock()), [])
        if not created and reserved.status is not PaymentStatus.PENDING:
            log.info(
                "order already settled by payment_svc, nothing to charge",
                order_id=request.order_id,
                status=reserved.status.value,
            )
            return reserved
        decision = await self._provider.charge(request, idempotency_key=payment_id)
        payment = record_payment(request, decision, payment_id, reserved.create_time)
        if not await self._store.update(payment, PaymentStatus.PENDING, [outcome_event(payment)]):
            return await self.get(request.order_id)  # another replica saved the same outcome first
        self._on_commit()
        log.info(
            "payment recorded",
            order_id=payment.order_id,
            payment_id=payment.payment_id,
            status=payment.status.value,
            amount=str(payment.amount),
            decline_reason=payment.decline_reason or None,
        )
        return payment

    async def void(self, request: ChargeRequest) -> Payment:
        """The customer cancelled: if no charge was started, none ever will be (VOIDED, PaymentVoided).

        A charge already under way or made is left alone: its outcome reaches order_svc, which asks
        for a refund if it succeeded.
        """
        payment = voided_payment(request, derived_id("payment", request.order_id), self._clock())
        saved, created = await self._store.create(payment, [voided_event(payment)])
        if created:
            self._on_commit()
            log.info("payment voided before any charge", order_id=request.order_id, payment_id=payment.payment_id)
        else:
            log.info("cancel after the charge started: a refund follows if it succeeded", order_id=request.order_id)
        return saved

    async def refund(self, order_id: str, payment_id: str) -> Payment:
        """Refund a charge exactly once (provider idempotency key, status-guarded save); repeats are no-ops."""
        payment = await self.get(order_id)
        if payment.payment_id != payment_id:
            raise PaymentNotFound(order_id)
        if payment.status is not PaymentStatus.SUCCEEDED:
            log.info("nothing to refund", order_id=order_id, status=payment.status.value)
            return payment
        await self._provider.refund(payment, idempotency_key=derived_id("refund", payment_id))
        refunded = payment.refunded(self._clock())
        if not await self._store.update(refunded, PaymentStatus.SUCCEEDED, [refunded_event(refunded)]):
            return await self.get(order_id)  # another replica recorded the same refund first
        self._on_commit()
        log.info("payment refunded", order_id=order_id, payment_id=payment_id, amount=str(payment.amount))
        return refunded

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
