"""What authentication costs: the saga on two systems, token checks on and off, interleaved, and the difference.

Both systems run side by side (idle while the other is measured). For each in-flight level the
orders are split into rounds; each round measures every path (gRPC, HTTP) on both systems back to
back, the first system alternating from round to round (on, off, then off, on, ...), so a steady
drift of the machine hits both alike and cancels over two rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench.loop import closed_loop
from bench.scenarios import Measure, Scenario
from bench.stats import RunResult

__all__ = [
    "OFF",
    "ON",
    "SYSTEMS",
    "TARGET_PCT",
    "auth_cost_costs",
    "pooled",
    "round_counts",
    "round_names",
    "run_auth_cost",
    "schedule",
    "summarize",
]

ON, OFF = "on", "off"
SYSTEMS = (ON, OFF)
#: The issue's target: with authentication on, at most this many % fewer orders/s than without.
TARGET_PCT = 5.0
#: Whose CPU the cost is reported for (the rest is in each run's ``cpu_ms_per_op``).
COST_PROCESSES = ("order_svc", "envoy", "system_total")

#: (via, system) -> level -> the runs of every round, in order.
AuthRuns = dict[tuple[str, str], dict[int, list[RunResult]]]


def round_counts(count: int, rounds: int) -> list[int]:
    """``count`` orders split over ``rounds`` runs as evenly as possible (the first ones take the remainder)."""
    return [count // rounds + (1 if i < count % rounds else 0) for i in range(rounds)]


def round_names(levels: Sequence[int], rounds: int) -> list[str]:
    """The name of every run (its customer is named after it), warm-up first."""
    return ["warmup", *(f"l{level}r{r}" for level in levels for r in range(rounds))]


def schedule(levels: Sequence[int], rounds: int, vias: Sequence[str]) -> list[tuple[int, int, str, str]]:
    """(level, round, via, system) in the order they run: per round and path, on/off in alternating order."""
    order: list[tuple[int, int, str, str]] = []
    for level in levels:
        for r in range(rounds):
            systems = SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]
            order += [(level, r, via, system) for via in vias for system in systems]
    return order


async def run_auth_cost(measure: Measure, rounds: int, scenarios: Mapping[tuple[str, str], Scenario]) -> AuthRuns:
    """Warm every (via, system) up, then run the schedule; each run's CPU per order goes in its ``extra``."""
    vias = list(dict.fromkeys(via for via, _ in scenarios))
    if measure.warmup:
        for scenario in scenarios.values():
            await closed_loop(
                scenario.make_op("warmup"), count=measure.warmup, in_flight=min(16, measure.warmup), budget_s=30
            )
    counts = round_counts(measure.count, rounds)
    results: AuthRuns = {}
    for level, r, via, system in schedule(measure.levels, rounds, vias):
        scenario = scenarios[(via, system)]
        scenario.meter.start()
        result = await closed_loop(
            scenario.make_op(f"l{level}r{r}"), count=counts[r], in_flight=level, budget_s=measure.budget_s
        )
        scenario.meter.stop()
        result.extra["cpu_ms_per_op"] = scenario.meter.ms_per_op(result.completed, scenario.system)
        measure.progress(
            f"auth {system:<3} via {via:<4} in_flight={level:<4} round {r + 1}/{rounds} "
            f"{result.completed}/{counts[r]} in {result.elapsed_s:.1f}s = {result.per_second or 0:.0f}/s  "
            f"failed={result.failed}"
        )
        results.setdefault((via, system), {}).setdefault(level, []).append(result)
    return results


def pooled(runs: Sequence[RunResult]) -> dict[str, Any]:
    """The rounds of one (via, system, level) as one run: orders/s over their total time, latencies pooled.

    ``cpu_ms_per_op`` is the rounds' CPU per order weighted by their orders; ``per_second_by_round``
    shows how much the rounds differ.
    """
    merged = RunResult(
        requested=sum(r.requested for r in runs),
        in_flight=runs[0].in_flight,
        completed=sum(r.completed for r in runs),
        failed=sum(r.failed for r in runs),
        elapsed_s=sum(r.elapsed_s for r in runs),
        truncated=any(r.truncated for r in runs),
        errors=[e for r in runs for e in r.errors],
    )
    for run in runs:
        for name, values in run.latencies.items():
            merged.latencies.setdefault(name, []).extend(values)
    doc = merged.to_json()
    names = list(dict.fromkeys(name for r in runs for name in r.extra.get("cpu_ms_per_op", {})))
    cpu: dict[str, float | None] = {}
    for name in names:
        parts = [(r.extra["cpu_ms_per_op"].get(name), r.completed) for r in runs]
        known = [(ms, n) for ms, n in parts if ms is not None and n > 0]
        total = sum(n for _, n in known)
        cpu[name] = round(sum(ms * n for ms, n in known) / total, 3) if known and total else None
    doc["cpu_ms_per_op"] = cpu
    doc["rounds"] = len(runs)
    doc["per_second_by_round"] = [r.per_second for r in runs]
    return doc


def _pct_fewer(on: float | None, off: float | None) -> float | None:
    """1 - on/off in %: how many fewer orders/s with authentication on (negative: more)."""
    if on is None or off is None or off <= 0:
        return None
    return round(100 * (1 - on / off), 2)


def _minus(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


def _latency(run: Mapping[str, Any], key: str) -> float | None:
    value = run.get("latency", {}).get("create_order", {}).get(key)
    return None if value is None else float(value)


def auth_cost_costs(on: Mapping[str, Any], off: Mapping[str, Any]) -> dict[str, Any]:
    """What turning authentication on costs at one level on one path, from the two pooled runs."""
    rounds_on, rounds_off = on.get("per_second_by_round", []), off.get("per_second_by_round", [])
    by_round = [_pct_fewer(a, b) for a, b in zip(rounds_on, rounds_off, strict=True)]
    known = [pct for pct in by_round if pct is not None]
    cpu_on, cpu_off = on.get("cpu_ms_per_op", {}), off.get("cpu_ms_per_op", {})
    system_on, system_off = cpu_on.get("system_total"), cpu_off.get("system_total")
    return {
        "orders_per_second_pct": _pct_fewer(on.get("per_second"), off.get("per_second")),
        "orders_per_second_pct_by_round": by_round,
        "orders_per_second_pct_median_of_rounds": round(statistics.median(known), 2) if known else None,
        # 1 - off/on of the system's CPU per order: fewer orders/s the same CPU serves (all a CPU-bound box can do).
        "system_cpu_pct": None if not system_on or system_off is None else round(100 * (1 - system_off / system_on), 2),
        "create_order_p50_ms_added": _minus(_latency(on, "p50_ms"), _latency(off, "p50_ms")),
        "create_order_p99_ms_added": _minus(_latency(on, "p99_ms"), _latency(off, "p99_ms")),
        "cpu_ms_per_order_added": {
            name: _minus(cpu_on.get(name), cpu_off.get(name)) for name in COST_PROCESSES if name in cpu_on
        },
    }


def summarize(results: AuthRuns, levels: Sequence[int]) -> dict[str, Any]:
    """``runs`` per path: for each level the pooled on and off runs and what auth costs; plus the target."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for via in dict.fromkeys(via for via, _ in results):
        entries = []
        for level in levels:
            on, off = pooled(results[(via, ON)][level]), pooled(results[(via, OFF)][level])
            entries.append({"in_flight": level, ON: on, OFF: off, "cost": auth_cost_costs(on, off)})
        runs[via] = entries
    costs = [
        entry["cost"]["orders_per_second_pct"]
        for entries in runs.values()
        for entry in entries
        if entry["cost"]["orders_per_second_pct"] is not None
    ]
    worst = max(costs) if costs else None
    return {
        "runs": runs,
        "target": {
            "goal_pct": TARGET_PCT,
            "worst_pct": worst,
            "met": None if worst is None else worst <= TARGET_PCT,
        },
    }
