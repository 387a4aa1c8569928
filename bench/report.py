"""``python -m bench.report FILE``: the benchmark's JSON document as the Markdown tables of the README."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main", "markdown"]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _latency(run: dict[str, Any], name: str) -> str:
    summary = run.get("latency", {}).get(name)
    if not summary:
        return "-"
    return " / ".join(_fmt(summary[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))


def _minus(run: dict[str, Any], name: str) -> str:
    summary = run.get("latency_minus_provider", {}).get(name)
    if not summary:
        return "-"
    return " / ".join(_fmt(summary[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))


def _provider_latency(section: dict[str, Any]) -> list[str]:
    """The provider-latency runs: the saga's latencies with and without the provider's share."""
    runs = section.get("runs")
    if not isinstance(runs, list):
        return []
    latency = section.get("latency_ms")
    lines = [
        "",
        f"| in flight (provider {latency} ms, gRPC) | orders/s | placed → final ms p50/p95/p99/max "
        f"| placed → final minus {latency} ms, p50/p95/p99 | placed → notification stored ms p50/p95/p99/max "
        f"| placed → notification stored minus {latency} ms, p50/p95/p99 |",
        "|---:|---:|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['in_flight']} | {_fmt(run['per_second'])} | {_latency(run, 'placed_to_final')} "
            f"| {_minus(run, 'placed_to_final')} | {_latency(run, 'placed_to_notification_stored')} "
            f"| {_minus(run, 'placed_to_notification_stored')} |"
        )
    return lines


def _pair(on: dict[str, Any], off: dict[str, Any], get: Callable[[dict[str, Any]], Any], digits: int = 1) -> str:
    return f"{_fmt(get(on), digits)} / {_fmt(get(off), digits)}"


def _auth_cost(section: dict[str, Any]) -> list[str]:
    """Authentication on beside off: orders/s, CreateOrder p50/p99 and CPU per order, and the cost."""
    runs = section.get("runs")
    if not isinstance(runs, dict):
        return []
    lines = [
        "",
        "| in flight | via | orders/s on / off | fewer orders/s with auth, % | by round (median) "
        "| CreateOrder p50 ms on / off | CreateOrder p99 ms on / off "
        "| order_svc CPU-ms/order on / off | Envoy CPU-ms/order on / off | system CPU-ms/order on / off "
        "| system CPU cost, % (1 - off/on) |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for via, entries in runs.items():
        for entry in entries:
            on, off, cost = entry["on"], entry["off"], entry["cost"]
            rounds = ", ".join(_fmt(pct) for pct in cost.get("orders_per_second_pct_by_round", []))
            envoy = "-" if via != "http" else _pair(on, off, lambda r: r["cpu_ms_per_op"].get("envoy"), 2)
            lines.append(
                f"| {entry['in_flight']} | {via} | {_pair(on, off, lambda r: r['per_second'])} "
                f"| {_fmt(cost['orders_per_second_pct'])} "
                f"| {rounds} ({_fmt(cost.get('orders_per_second_pct_median_of_rounds'))}) "
                f"| {_pair(on, off, lambda r: r['latency']['create_order']['p50_ms'], 2)} "
                f"| {_pair(on, off, lambda r: r['latency']['create_order']['p99_ms'], 2)} "
                f"| {_pair(on, off, lambda r: r['cpu_ms_per_op'].get('order_svc'), 2)} | {envoy} "
                f"| {_pair(on, off, lambda r: r['cpu_ms_per_op'].get('system_total'), 2)} "
                f"| {_fmt(cost.get('system_cpu_pct'))} |"
            )
    return lines


def markdown(doc: dict[str, Any]) -> str:
    """Throughput, latency, cost and targets, one table each."""
    e2e, raw, ratios = doc.get("end_to_end", {}), doc.get("raw_limits", {}), doc.get("ratios", {})
    lines = [
        "| in flight | via | orders/s | CreateOrder ms p50/p95/p99/max | placed → final ms p50/p95/p99/max "
        "| placed → notification stored ms p50/p95/p99/max | CPU-ms/order (system) |",
        "|---:|---|---:|---|---|---|---:|",
    ]
    for via in ("grpc", "http"):
        runs = e2e.get(via)
        if not isinstance(runs, list):
            continue
        for run in runs:
            lines.append(
                f"| {run['in_flight']} | {via} | {_fmt(run['per_second'])} | {_latency(run, 'create_order')} "
                f"| {_latency(run, 'placed_to_final')} | {_latency(run, 'placed_to_notification_stored')} "
                f"| {_fmt(run.get('cpu_ms_per_op', {}).get('system_total'), 2)} |"
            )
    lines += [
        "",
        "| in flight | gRPC echo calls/s | JetStream round trips/s | bare pipeline orders/s | system ÷ echo "
        "| system ÷ JetStream | system ÷ bare | gateway adds (CreateOrder p50, ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    limits = {name: {r["in_flight"]: r for r in runs} for name, runs in raw.items() if isinstance(runs, list)}
    for level, entry in ratios.items():
        rate = {name: limits.get(name, {}).get(int(level), {}).get("per_second") for name in limits}
        lines.append(
            f"| {level} | {_fmt(rate.get('grpc_echo'))} | {_fmt(rate.get('jetstream_round_trip'))} "
            f"| {_fmt(rate.get('bare_pipeline'))} | {_fmt(entry.get('system_vs_grpc_echo'), 3)} "
            f"| {_fmt(entry.get('system_vs_jetstream_round_trip'), 3)} "
            f"| {_fmt(entry.get('system_vs_bare_pipeline'), 3)} "
            f"| {_fmt(entry.get('gateway_adds_create_p50_ms'), 2)} |"
        )
    grpc_runs = e2e.get("grpc") if isinstance(e2e.get("grpc"), list) else []
    processes = ["order_svc", "payment_svc", "notification_svc", "nats-server", "system_total", "bench_client"]
    lines += [
        "",
        "| in flight (gRPC) | " + " | ".join(processes) + " |",
        "|---:|" + "---:|" * len(processes),
    ]
    for run in grpc_runs:
        cpu = run.get("cpu_ms_per_op", {})
        lines.append(f"| {run['in_flight']} | " + " | ".join(_fmt(cpu.get(p), 2) for p in processes) + " |")
    lines += _provider_latency(doc.get("provider_latency", {}))
    lines += _auth_cost(doc.get("auth_cost", {}))
    rss = doc.get("peak_rss_mb", {})
    lines += ["", "| peak RSS, MiB | " + " | ".join(rss) + " |", "|---|" + "---:|" * len(rss)]
    lines.append("| | " + " | ".join(_fmt(v) for v in rss.values()) + " |")
    lines += ["", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for target in doc.get("targets", []):
        met = {True: "yes", False: "no", None: "-"}[target["met"]]
        lines.append(f"| {target['target']} | {target['goal']} | {_fmt(target['measured'], 2)} | {met} |")
    return "\n".join(lines)


def main() -> None:
    """Print the tables of one JSON document written by ``python -m bench --output FILE``."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("file", type=Path)
    print(markdown(json.loads(parser.parse_args().file.read_text())))


if __name__ == "__main__":
    main()
