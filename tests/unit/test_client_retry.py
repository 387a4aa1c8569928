"""The client's retry policy, with fake attempts: which failures it retries, and its overall deadline."""

from __future__ import annotations

import time

import pytest

from orders_client import DeadlineExceeded, InvalidOrder, OrdersClient, Unavailable


class Flaky:
    """Fails with ``errors`` in turn, then answers "ok"; records each attempt's timeout."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.timeouts: list[float] = []

    async def __call__(self, timeout: float) -> str:
        self.timeouts.append(timeout)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_transient_failures_are_retried_until_an_answer() -> None:
    attempt = Flaky(Unavailable("down"), DeadlineExceeded("slow"), Unavailable("down"))
    assert await OrdersClient("unused:1", timeout=2.0)._call(attempt, retry=True) == "ok"
    assert len(attempt.timeouts) == 4
    assert all(0 < t <= 2.0 for t in attempt.timeouts)


async def test_other_failures_are_not_retried() -> None:
    attempt = Flaky(InvalidOrder("bad"))
    with pytest.raises(InvalidOrder):
        await OrdersClient("unused:1")._call(attempt, retry=True)
    assert len(attempt.timeouts) == 1


async def test_without_retry_one_attempt_only() -> None:
    attempt = Flaky(Unavailable("down"))
    with pytest.raises(Unavailable):
        await OrdersClient("unused:1")._call(attempt, retry=False)
    assert len(attempt.timeouts) == 1


async def test_retries_stop_at_the_overall_deadline() -> None:
    attempt = Flaky(*[Unavailable("down")] * 1000)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await OrdersClient("unused:1", timeout=5.0, deadline=0.5)._call(attempt, retry=True)
    assert time.monotonic() - started < 1.5
    assert 2 <= len(attempt.timeouts) < 50
    assert all(t <= 0.5 for t in attempt.timeouts)  # no attempt may outlive the deadline
