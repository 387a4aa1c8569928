"""Latency summaries (p50/p95/p99/max) and closed-loop run results, as plain JSON-ready dicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunResult", "latency_summary", "percentile", "ratio"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, nearest-rank; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99/max in milliseconds (3 decimals) and the sample count."""
    values = sorted(seconds)
    return {
        "n": len(values),
        "p50_ms": _ms(percentile(values, 50)),
        "p95_ms": _ms(percentile(values, 95)),
        "p99_ms": _ms(percentile(values, 99)),
        "max_ms": _ms(values[-1] if values else math.nan),
    }


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """The quotient rounded to 3 decimals; None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, 3)


@dataclass
class RunResult:
    """One closed-loop run: how many operations completed, in how long, and their latencies by name."""

    requested: int
    in_flight: int
    completed: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    truncated: bool = False
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float | None:
        return round(self.completed / self.elapsed_s, 1) if self.elapsed_s > 0 and self.completed else None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "in_flight": self.in_flight,
            "requested": self.requested,
            "completed": self.completed,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "per_second": self.per_second,
            "truncated": self.truncated,
            "latency": {name: latency_summary(values) for name, values in self.latencies.items()},
        }
        if self.errors:
            doc["errors"] = self.errors[:5]
        doc.update(self.extra)
        return doc
