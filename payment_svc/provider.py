"""The mock payment provider: the domain rule plus seedable randomness and simulated latency."""

from __future__ import annotations

import asyncio
import random

from payment_svc.domain import ChargeRequest, Decision, decide

__all__ = ["MockPaymentProvider"]


class MockPaymentProvider:
    """Stands in for a card processor. ``latency`` simulates its round trip (seconds)."""

    def __init__(self, decline_rate: float = 0.0, latency: float = 0.0, seed: int | None = None) -> None:
        self._decline_rate = decline_rate
        self._latency = latency
        self._random = random.Random(seed)

    async def charge(self, request: ChargeRequest, idempotency_key: str) -> Decision:
        if self._latency > 0:
            await asyncio.sleep(self._latency)  # the simulated provider round trip, not a wait for a condition
        return decide(request.payment_method, self._random.random(), self._decline_rate)
