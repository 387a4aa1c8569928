"""What observing the system costs: the saga via gRPC with metrics off, on (the default), and tracing at 1 % and 100 %.

Each variant is a stack of its own (nats-server and the three services, started with the variant's
environment), all four up at once; ``run_interleaved`` then runs them back to back at every level,
so a burst of load from elsewhere on the machine hits all of them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import median
from typing import Any

__all__ = ["BASELINES", "TRACING_OFF", "VARIANTS", "cost_summary", "variant_env"]

#: The services' metrics ports: -1 turns a service's /metrics endpoint off (and with it the gRPC
#: interceptor and the background gauge refreshes; a few counter inc() calls per order remain).
_METRICS_PORTS = ("ORDER_SVC_METRICS_PORT", "PAYMENT_SVC_METRICS_PORT", "NOTIFICATION_SVC_METRICS_PORT")
#: Tracing off whatever the caller's environment says.
TRACING_OFF = {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
SAMPLER = "parentbased_traceidratio"
#: The variants, in the order they run at each level: (name, metrics on, tracing sample ratio or None).
VARIANTS: tuple[tuple[str, bool, float | None], ...] = (
    ("metrics_off", False, None),
    ("metrics_on", True, None),
    ("tracing_1pct", True, 0.01),
    ("tracing_100pct", True, 1.0),
)
#: What each variant's cost is measured against.
BASELINES = {"metrics_on": "metrics_off", "tracing_1pct": "metrics_on", "tracing_100pct": "metrics_on"}
_TARGETS = {"metrics_on": 3.0, "tracing_1pct": 5.0}


def variant_env(metrics: bool, ratio: float | None, otlp_endpoint: str) -> dict[str, str]:
    """The services' environment for one variant (tracing exports to ``otlp_endpoint``)."""
    env: dict[str, str] = {} if metrics else dict.fromkeys(_METRICS_PORTS, "-1")
    if ratio is None:
        env |= TRACING_OFF
    else:
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_TRACES_SAMPLER": SAMPLER,
            "OTEL_TRACES_SAMPLER_ARG": str(ratio),
        }
    return env


def _percent_slower(rate: float | None, baseline: float | None) -> float | None:
    if not rate or not baseline:
        return None
    return round((1 - rate / baseline) * 100, 2)


def _percent_more(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return round((value / baseline - 1) * 100, 2)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(median(known), 3) if known else None


def cost_summary(runs: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per level, each variant's median orders/s and CPU-ms per order over its runs, and its cost in %.

    ``throughput_cost_percent`` is how much slower than its baseline (negative: faster, i.e. noise);
    ``cpu_cost_percent`` how much more CPU per order the system (three services and nats-server) spent.
    """
    by_level: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for variant, variant_runs in runs.items():
        for run in variant_runs:
            by_level.setdefault(run["in_flight"], {}).setdefault(variant, []).append(run)
    summary: dict[str, Any] = {}
    for level, variants in sorted(by_level.items()):
        medians = {
            variant: {
                "runs": len(level_runs),
                "per_second": _median([r.get("per_second") for r in level_runs]),
                "cpu_ms_per_order": _median([r.get("cpu_ms_per_op", {}).get("system_total") for r in level_runs]),
            }
            for variant, level_runs in variants.items()
        }
        entry: dict[str, Any] = {}
        for variant, median_row in medians.items():
            row: dict[str, Any] = dict(median_row)
            base = medians.get(BASELINES.get(variant, ""))
            if base is not None:
                row["against"] = BASELINES[variant]
                row["throughput_cost_percent"] = _percent_slower(row["per_second"], base["per_second"])
                row["cpu_cost_percent"] = _percent_more(row["cpu_ms_per_order"], base["cpu_ms_per_order"])
                if variant in _TARGETS:
                    row["target_percent"] = _TARGETS[variant]
                    cost = row["throughput_cost_percent"]
                    row["met"] = None if cost is None else cost <= _TARGETS[variant]
            entry[variant] = row
        summary[str(level)] = entry
    return summary
