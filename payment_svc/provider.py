"""The mock payment provider: the domain rule plus seedable randomness and simulated latency."""

from __future__ import annotations

import asyncio
import random
import secrets

from opentelemetry.trace import SpanKind

from chassis import tracing
from payment_svc.domain import ChargeRequest, Decision, Payment, decide

__all__ = ["MockPaymentProvider"]


class MockPaymentProvider:
    """Stands in for a card processor. ``latency`` simulates its round trip (seconds).

    Idempotent like a real processor: the random draw derives from the idempotency key (and
    the seed), so a retried or raced charge of one order gets the same decision every time.
    """

    def __init__(self, decline_rate: float = 0.0, latency: float = 0.0, seed: int | None = None) -> None:
        self._decline_rate = decline_rate
        self._latency = latency
        self._salt = str(seed) if seed is not None else secrets.token_hex(8)

    async def charge(self, request: ChargeRequest, idempotency_key: str) -> Decision:
        with tracing.span("payment provider charge", SpanKind.CLIENT) as span:
            if self._latency > 0:
                await asyncio.sleep(self._latency)  # the simulated provider round trip, not a wait for a condition
            draw = random.Random(f"{self._salt}:{idempotency_key}").random()
            decision = decide(request.payment_method, draw, self._decline_rate)
            if span is not None:
                span.set_attribute("payment.idempotency_key", idempotency_key)
                span.set_attribute("payment.approved", decision.approved)
            return decision

    async def refund(self, payment: Payment, idempotency_key: str) -> None:
        """Refunds always go through; the same key refunds once at a real processor."""
        with tracing.span("payment provider refund", SpanKind.CLIENT) as span:
            if span is not None:
                span.set_attribute("payment.idempotency_key", idempotency_key)
            if self._latency > 0:
                await asyncio.sleep(self._latency)  # the simulated provider round trip
