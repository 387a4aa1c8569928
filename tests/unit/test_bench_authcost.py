"""The auth-cost scenario's schedule and arithmetic: alternating rounds, pooled runs, cost = 1 - on/off."""

from __future__ import annotations

import pytest

from bench.authcost import auth_cost_costs, pooled, round_counts, round_names, schedule, summarize
from bench.cli import parse_args
from bench.stats import RunResult


def run(completed: int, elapsed_s: float, create_ms: list[float], cpu: dict[str, float | None]) -> RunResult:
    result = RunResult(requested=completed, in_flight=4, completed=completed, elapsed_s=elapsed_s)
    result.latencies["create_order"] = [ms / 1000 for ms in create_ms]
    result.extra["cpu_ms_per_op"] = cpu
    return result


def test_it_is_off_by_default_and_its_options_are_checked() -> None:
    args = parse_args([])
    assert args.auth_cost is False
    assert (args.auth_cost_levels, args.auth_cost_count, args.auth_cost_rounds) == ([1, 16, 64], 2000, 4)
    with pytest.raises(SystemExit):
        parse_args(["--auth-cost", "--auth-cost-count", "3", "--auth-cost-rounds", "4"])


def test_rounds_share_the_orders_and_alternate_which_system_goes_first() -> None:
    assert round_counts(10, 4) == [3, 3, 2, 2]
    assert round_names([1, 16], 2) == ["warmup", "l1r0", "l1r1", "l16r0", "l16r1"]
    assert schedule([8], 2, ["grpc", "http"]) == [
        (8, 0, "grpc", "on"),
        (8, 0, "grpc", "off"),
        (8, 0, "http", "on"),
        (8, 0, "http", "off"),
        (8, 1, "grpc", "off"),
        (8, 1, "grpc", "on"),
        (8, 1, "http", "off"),
        (8, 1, "http", "on"),
    ]


def test_rounds_are_pooled_by_their_orders_and_time() -> None:
    doc = pooled(
        [
            run(100, 1.0, [1.0] * 100, {"order_svc": 2.0, "envoy": None}),
            run(300, 2.0, [3.0] * 300, {"order_svc": 1.0, "envoy": 0.5}),
        ]
    )
    assert doc["completed"] == 400
    assert doc["per_second"] == pytest.approx(400 / 3.0, abs=0.1)
    assert doc["per_second_by_round"] == [100.0, 150.0]
    assert doc["latency"]["create_order"]["n"] == 400
    assert doc["latency"]["create_order"]["p50_ms"] == pytest.approx(3.0)
    assert doc["cpu_ms_per_op"] == {"order_svc": 1.25, "envoy": 0.5}  # weighted by orders; unknown skipped


def test_the_cost_is_one_minus_on_over_off() -> None:
    on = pooled([run(90, 1.0, [2.0] * 90, {"order_svc": 1.5, "system_total": 3.0})])
    off = pooled([run(100, 1.0, [1.5] * 100, {"order_svc": 1.0, "system_total": 2.5})])
    cost = auth_cost_costs(on, off)
    assert cost["orders_per_second_pct"] == 10.0
    assert cost["orders_per_second_pct_by_round"] == [10.0]
    assert cost["orders_per_second_pct_median_of_rounds"] == 10.0
    assert cost["system_cpu_pct"] == pytest.approx(100 * (1 - 2.5 / 3.0), abs=0.01)
    assert cost["create_order_p50_ms_added"] == pytest.approx(0.5)
    assert cost["cpu_ms_per_order_added"] == {"order_svc": 0.5, "system_total": 0.5}


def test_the_target_is_the_worst_level_and_path() -> None:
    def runs(rate: int) -> dict[int, list[RunResult]]:
        return {1: [run(rate, 1.0, [1.0] * rate, {})]}

    results = {
        ("grpc", "on"): runs(98),
        ("grpc", "off"): runs(100),
        ("http", "on"): runs(90),
        ("http", "off"): runs(100),
    }
    section = summarize(results, [1])
    assert [e["cost"]["orders_per_second_pct"] for e in section["runs"]["grpc"]] == [2.0]
    assert section["target"] == {"goal_pct": 5.0, "worst_pct": 10.0, "met": False}
