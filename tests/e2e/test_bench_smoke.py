"""`python -m bench` with a tiny count: one JSON document with every section and sane numbers (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.report import markdown

ROOT = Path(__file__).resolve().parents[2]
COUNT = 50
LEVELS = [1, 16]
SAGA_LATENCIES = {"create_order", "placed_to_final", "placed_to_notification_stored"}
# The provider-latency section: a second stack whose payment_svc sleeps this long per charge; few orders.
PROVIDER_LATENCY_MS = 100
PROVIDER_LEVELS = [1, 4]
PROVIDER_COUNT = 10
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
# The auth-cost section: two more systems (authentication on, off), few orders over two alternating rounds.
AUTH_LEVELS = [1, 4]
AUTH_COUNT = 20
AUTH_ROUNDS = 2


def check_runs(
    runs: Any, latencies: set[str], processes: set[str], levels: list[int] = LEVELS, count: int = COUNT
) -> None:
    assert isinstance(runs, list), runs
    assert [r["in_flight"] for r in runs] == levels
    for run in runs:
        assert run["completed"] == count, run
        assert run["failed"] == 0, run
        assert run["truncated"] is False
        assert run["per_second"] > 0
        assert set(run["latency"]) == latencies
        for summary in run["latency"].values():
            assert summary["n"] == count
            assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
        cpu = run["cpu_ms_per_op"]
        assert processes <= set(cpu), cpu
        assert all(cpu[name] is not None and cpu[name] >= 0 for name in processes), cpu


def test_bench_prints_one_json_document_with_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--count", str(COUNT), "--in-flight", ",".join(map(str, LEVELS))]
    command += ["--warmup", "10", "--run-seconds", "120", "--output", str(out)]
    command += ["--provider-latency-ms", str(PROVIDER_LATENCY_MS), "--provider-latency-count", str(PROVIDER_COUNT)]
    command += ["--provider-latency-in-flight", ",".join(map(str, PROVIDER_LEVELS))]
    command += ["--auth-cost", "--auth-cost-count", str(AUTH_COUNT), "--auth-cost-rounds", str(AUTH_ROUNDS)]
    command += ["--auth-cost-in-flight", ",".join(map(str, AUTH_LEVELS))]
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(done.stdout)
    assert doc == json.loads(out.read_text())

    assert doc["machine"]["nproc"] >= 1
    assert doc["machine"]["cpu_model"]
    assert doc["date"]
    assert len(doc["load_average_at_start"]) == 3
    assert doc["config"]["store"] == "sqlite"
    assert doc["config"]["orders_per_run"] == COUNT

    services = {"order_svc", "payment_svc", "notification_svc", "nats-server", "system_total", "bench_client"}
    check_runs(doc["end_to_end"]["grpc"], SAGA_LATENCIES, services)
    http = doc["end_to_end"]["http"]
    if isinstance(http, dict):
        assert http["skipped"], "the HTTP part may only be missing with a reason"
    else:
        check_runs(http, SAGA_LATENCIES, services | {"envoy"})

    raw = doc["raw_limits"]
    check_runs(raw["grpc_echo"], {"rpc"}, {"echo_server"})
    check_runs(raw["jetstream_round_trip"], {"publish", "round_trip"}, {"nats-server"})
    bare = {"bare_order", "bare_payment", "bare_notification", "nats-server", "system_total"}
    check_runs(raw["bare_pipeline"], SAGA_LATENCIES, bare)

    for level in LEVELS:
        ratios = doc["ratios"][str(level)]
        for name in ("system_vs_bare_pipeline", "system_vs_grpc_echo", "system_vs_jetstream_round_trip"):
            assert ratios[name] > 0, (level, name, ratios)

    rss = doc["peak_rss_mb"]
    assert {"order_svc", "payment_svc", "notification_svc", "nats-server", "echo_server", "bare_order"} <= set(rss)
    assert all(mb is None or mb > 0 for mb in rss.values()), rss

    assert len(doc["targets"]) == 6  # the sixth: what authentication costs
    for target in doc["targets"]:
        assert {"target", "goal", "measured", "met"} <= set(target)
    assert all(percent is None or percent >= 0 for percent in doc["idle_cpu_percent"].values())

    provider = doc["provider_latency"]
    assert provider["latency_ms"] == PROVIDER_LATENCY_MS
    assert provider["in_flight"] == PROVIDER_LEVELS
    assert provider["orders_per_run"] == PROVIDER_COUNT
    assert provider["env"] == {"PAYMENT_SVC_LATENCY_MS": str(PROVIDER_LATENCY_MS)}
    check_runs(provider["runs"], SAGA_LATENCIES, services, PROVIDER_LEVELS, PROVIDER_COUNT)
    for run in provider["runs"]:
        minus = run["latency_minus_provider"]
        assert set(minus) == {"placed_to_final", "placed_to_notification_stored"}, minus
        for name, summary in minus.items():
            for key in PERCENTILES:
                assert summary[key] == pytest.approx(run["latency"][name][key] - PROVIDER_LATENCY_MS, abs=0.002)
            # Every charge sleeps the provider's latency: a negative remainder means the env never reached it.
            assert summary["p50_ms"] >= 0, (name, summary)

    check_auth_cost(doc["auth_cost"], services, isinstance(http, list))

    tables = markdown(doc)
    assert "| 16 | grpc |" in tables
    assert f"| in flight (provider {PROVIDER_LATENCY_MS} ms, gRPC) |" in tables
    assert "| peak RSS, MiB |" in tables
    assert "| 4 | grpc |" in tables.split("orders/s on / off", 1)[1]


def check_auth_cost(section: dict[str, Any], services: set[str], with_http: bool) -> None:
    """Both systems at every level on every path, pooled over the rounds, and the cost of auth beside them."""
    assert section["in_flight"] == AUTH_LEVELS
    assert section["orders_per_level"] == AUTH_COUNT
    assert section["rounds"] == AUTH_ROUNDS
    assert section["off_env"] == {"ORDER_SVC_INSECURE_NO_AUTH": "true"}
    vias = {"grpc", "http"} if with_http else {"grpc"}
    assert set(section["runs"]) == vias
    for via, entries in section["runs"].items():
        processes = services | {"envoy"} if via == "http" else services
        check_runs([e["on"] for e in entries], SAGA_LATENCIES, processes, AUTH_LEVELS, AUTH_COUNT)
        check_runs([e["off"] for e in entries], SAGA_LATENCIES, processes, AUTH_LEVELS, AUTH_COUNT)
        for entry in entries:
            for system in ("on", "off"):
                assert entry[system]["rounds"] == AUTH_ROUNDS
                assert len(entry[system]["per_second_by_round"]) == AUTH_ROUNDS
            cost = entry["cost"]
            on, off = entry["on"]["per_second"], entry["off"]["per_second"]
            assert cost["orders_per_second_pct"] == pytest.approx(100 * (1 - on / off), abs=0.01)
            assert len(cost["orders_per_second_pct_by_round"]) == AUTH_ROUNDS
            assert cost["orders_per_second_pct_median_of_rounds"] is not None
            system_on, system_off = (
                entry["on"]["cpu_ms_per_op"]["system_total"],
                entry["off"]["cpu_ms_per_op"]["system_total"],
            )
            assert cost["system_cpu_pct"] == pytest.approx(100 * (1 - system_off / system_on), abs=0.01)
            assert {"create_order_p50_ms_added", "create_order_p99_ms_added"} <= set(cost)
            expected = {"order_svc", "system_total"} | ({"envoy"} if via == "http" else set())
            assert set(cost["cpu_ms_per_order_added"]) == expected
    target = section["target"]
    assert target["goal_pct"] == 5.0
    worst = max(e["cost"]["orders_per_second_pct"] for entries in section["runs"].values() for e in entries)
    assert target["worst_pct"] == worst
    assert target["met"] is (worst <= 5.0)


COST_LEVELS = [1, 4]
COST_COUNT = 20
COST_VARIANTS = ["metrics_off", "metrics_on", "tracing_1pct", "tracing_100pct"]


def test_bench_observability_cost_runs_every_variant_interleaved(tmp_path: Path) -> None:
    """``--observability-cost``: four stacks (metrics off/on, tracing 1 % and 100 %), each level back to back."""
    command = [sys.executable, "-m", "bench", "--observability-cost", "--warmup", "5", "--run-seconds", "60"]
    command += ["--observability-cost-count", str(COST_COUNT), "--observability-cost-rounds", "2"]
    command += ["--observability-cost-in-flight", ",".join(map(str, COST_LEVELS))]
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI" and not k.startswith("OTEL_")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(done.stdout)
    cost = doc["observability_cost"]
    assert "end_to_end" not in doc  # only the cost is measured
    assert (cost["in_flight"], cost["orders_per_run"], cost["rounds"]) == (COST_LEVELS, COST_COUNT, 2)
    assert list(cost["runs"]) == COST_VARIANTS
    services = {"order_svc", "payment_svc", "notification_svc", "nats-server", "system_total", "bench_client"}
    for variant in COST_VARIANTS:
        runs = cost["runs"][variant]
        assert [r["round"] for r in runs] == [1, 1, 2, 2]
        check_runs([r for r in runs if r["round"] == 1], SAGA_LATENCIES, services, COST_LEVELS, COST_COUNT)
    envs = cost["env"]
    assert envs["metrics_off"]["ORDER_SVC_METRICS_PORT"] == "-1"
    assert "ORDER_SVC_METRICS_PORT" not in envs["metrics_on"]
    assert envs["metrics_on"]["OTEL_TRACES_EXPORTER"] == "none"
    for variant, ratio in (("tracing_1pct", "0.01"), ("tracing_100pct", "1.0")):
        assert envs[variant]["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert envs[variant]["OTEL_TRACES_SAMPLER_ARG"] == ratio
        assert envs[variant]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
    for level in COST_LEVELS:
        summary = cost["summary"][str(level)]
        assert set(summary) == set(COST_VARIANTS)
        assert all(row["per_second"] > 0 and row["runs"] == 2 for row in summary.values()), summary
        assert summary["metrics_on"]["against"] == "metrics_off"
        assert summary["tracing_1pct"]["against"] == summary["tracing_100pct"]["against"] == "metrics_on"
        for variant in ("metrics_on", "tracing_1pct", "tracing_100pct"):
            assert isinstance(summary[variant]["throughput_cost_percent"], float), summary[variant]
        assert summary["metrics_on"]["target_percent"] == 3.0
        assert summary["tracing_1pct"]["target_percent"] == 5.0
        assert isinstance(summary["tracing_1pct"]["met"], bool)
