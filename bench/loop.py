"""The closed loop every measurement shares: ``in_flight`` workers repeat one operation until ``count`` are done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.stats import RunResult

__all__ = ["Operation", "closed_loop"]

#: One operation; returns its named latencies in seconds (e.g. ``{"create": 0.002}``).
Operation = Callable[[int], Awaitable[dict[str, float]]]


async def closed_loop(operation: Operation, *, count: int, in_flight: int, budget_s: float) -> RunResult:
    """Run ``count`` operations with ``in_flight`` at a time; stop starting new ones after ``budget_s``.

    Each worker starts its next operation as soon as its last one finished, so exactly
    ``in_flight`` operations are in progress (fewer at the very end). A run cut short by the
    budget says so (``truncated``) and reports what completed.
    """
    result = RunResult(requested=count, in_flight=in_flight)
    issued = 0
    start = time.perf_counter()
    deadline = start + budget_s

    async def worker() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            index = issued
            issued += 1
            try:
                latencies = await operation(index)
            except Exception as error:
                result.failed += 1
                if len(result.errors) < 5:
                    result.errors.append(repr(error)[:300])
                continue
            result.completed += 1
            for name, seconds in latencies.items():
                result.latencies.setdefault(name, []).append(seconds)

    await asyncio.gather(*(worker() for _ in range(max(1, min(in_flight, count)))))
    result.elapsed_s = time.perf_counter() - start
    result.truncated = issued < count
    return result
