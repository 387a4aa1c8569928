"""A small ``make chaos``: every fault kind once while orders arrive through the gateway; every invariant holds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 60
#: Each service runs two replicas, and each replica is killed once.
REPLICAS = 6


def test_a_small_chaos_run_loses_nothing_doubles_nothing_and_leaves_nothing_behind(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.chaos",
            *("--orders", str(ORDERS), "--rate", "1.5", "--seed", "7"),
            *("--max-rounds", "1", "--fault-gap", "1", "--ack-wait", "3", "--max-seconds", "150"),
            *("--workdir", str(tmp_path / "chaos")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    took = time.monotonic() - started
    print(done.stderr[-5000:])  # the run's progress, shown when an assertion fails
    report = json.loads(done.stdout)  # exactly one JSON object on stdout; the progress went to stderr
    assert done.returncode == 0, f"{report['violations']}\n{done.stderr[-3000:]}"
    assert report["ok"]
    assert report["violations"] == []

    # Every fault kind, once; each replica killed once; every 5th order cancelled at once.
    assert report["faults_injected"]["rounds"] == 1
    assert report["faults_injected"]["kinds"] == {
        "cancel_race": ORDERS // 5,
        "consumer_pause": 1,
        "nats_node_kill": 1,
        "service_kill": REPLICAS,
        "stream_leader_stepdown": 1,
    }
    killed = [f["target"] for f in report["faults_injected"]["list"] if f["kind"] == "service_kill"]
    assert len(set(killed)) == REPLICAS
    (node,) = [f for f in report["faults_injected"]["list"] if f["kind"] == "nats_node_kill"]
    assert len(node["leaders_without_it"]) >= 1, "the other nodes led every stream while it was down"

    # The invariants, as the JSON states them.
    assert report["orders"] == ORDERS
    assert sum(report["outcomes"].values()) == ORDERS
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["missing"] == {"payments": 0, "notifications": 0, "events": 0}
    assert report["mismatched_payments"] == 0
    assert report["stuck_in_outbox"] == 0
    assert report["dead_letters"] == 0
    refunds = report["refunds"]
    assert refunds["payments_refunded"] == refunds["orders_refunded"] == refunds["refund_events_on_bus"]
    assert refunds["orders_refund_pending"] == 0
    assert report["cancels"]["requested"] == ORDERS // 5
    assert report["watches"]["ended_settled"] == report["watches"]["opened"] > 0
    assert report["max_seconds_to_final"] < 60
    assert took < 170
