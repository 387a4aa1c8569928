"""``make up CLUSTER=1``: 3 NATS nodes, 2 replicas of each service, the gateway balancing over both order_svc."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from devstack.stack import free_port
from devstack.up import CLUSTER_PORTS
from tests.e2e.test_make_up import ORDER, make_up, sign_in, still_running, up_env

NODES = 3


def free_block(size: int) -> int:
    """The first of ``size`` consecutive ports on 127.0.0.1 that nothing listens on."""
    while True:
        first = free_port()
        held: list[socket.socket] = []
        try:
            for offset in range(1, size):
                held.append(socket.socket())
                held[-1].bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return first


async def test_make_up_cluster_runs_three_nats_nodes_two_replicas_each_and_balances_orders(tmp_path: Path) -> None:
    env = up_env(tmp_path / "var")
    env.update({var: str(free_port()) for var in CLUSTER_PORTS})
    env.update({var: str(free_block(NODES)) for var in ("NATS_PORT", "NATS_CLUSTER_PORT", "NATS_MONITOR_PORT")})
    env["CLUSTER"] = "1"
    with make_up(env, tmp_path / "cluster.log") as up:
        state = await up.ready()
        names = set(state["pids"])
        assert {"nats-1", "nats-2", "nats-3"} <= names
        assert {"order_svc", "order_svc-2", "payment_svc", "payment_svc-2", "notification_svc-2"} <= names
        headers = await sign_in(env, "cluster")
        async with httpx.AsyncClient(base_url=state["gateway"], timeout=30, trust_env=False, headers=headers) as http:
            ids = []
            for _ in range(6):
                placed = await http.post("/v1/orders", json={**ORDER, "customerId": "cluster"})
                assert placed.status_code == 200, placed.text
                ids.append(placed.json()["orderId"])
            async with http.stream("GET", f"/v1/orders/{ids[-1]}:watch") as watch:
                lines = [line async for line in watch.aiter_lines() if line.startswith("data:")]
            assert "ORDER_STATE_PAID" in lines[-1]
    assert still_running(state["pids"]) == {}, up.output()[-4000:]
    out = up.output()
    assert "a 3-node JetStream cluster" in out
    # Round robin: both order_svc replicas took orders; the services were given every NATS node.
    logs = tmp_path / "var" / "logs"
    for name in ("order_svc.log", "order_svc-2.log"):
        assert "order created" in (logs / name).read_text(), f"{name} served no CreateOrder"
    for name in ("nats-1", "nats-2", "nats-3"):
        assert f"{name} │ " in out
    urls = ",".join(f"nats://127.0.0.1:{int(env['NATS_PORT']) + i}" for i in range(NODES))
    assert urls in (logs / "payment_svc-2.log").read_text()  # its "nats connected" line names every server
