"""The pieces of ``make up`` that need no process: .env parsing, port checks, the health-check CLI."""

from __future__ import annotations

import socket
from pathlib import Path

from chassis import healthcheck
from devstack.stack import free_port
from devstack.up import CLUSTER_PORTS, DEFAULT_PORTS, Ports, cluster_mode, load_dotenv, taken_ports


def test_dotenv_reads_assignments_and_skips_the_rest(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n\nLOG_LEVEL=DEBUG\n#PAYMENT_SVC_SEED=7\nexport GATEWAY_PORT=18080\n"
        "MONGODB_URI='mongodb://db:27017'\nNOT AN ASSIGNMENT\n"
    )
    assert load_dotenv(env) == {
        "LOG_LEVEL": "DEBUG",
        "GATEWAY_PORT": "18080",
        "MONGODB_URI": "mongodb://db:27017",
    }
    assert load_dotenv(tmp_path / "missing") == {}


def test_ports_default_to_the_public_contract_and_follow_the_environment() -> None:
    assert Ports.from_env({}).by_var == DEFAULT_PORTS
    assert Ports.from_env({"GATEWAY_PORT": "18080"})["GATEWAY_PORT"] == 18080


def test_cluster_mode_adds_three_nats_nodes_and_the_second_replicas_ports() -> None:
    assert [cluster_mode(env) for env in ({}, {"CLUSTER": "1"}, {"CLUSTER": "0"}, {"CLUSTER": "yes"})] == [
        False,
        True,
        False,
        True,
    ]
    ports = Ports.from_env({"NATS_PORT": "14222", "NATS_CLUSTER_PORT": "16222"}, cluster=True)
    assert ports.nats_nodes("NATS_PORT") == (14222, 14223, 14224)
    assert ports.nats_nodes("NATS_CLUSTER_PORT") == (16222, 16223, 16224)
    assert ports.nats_nodes("NATS_MONITOR_PORT") == (8222, 8223, 8224)
    assert {var: ports[var] for var in CLUSTER_PORTS} | {"NATS_CLUSTER_PORT": 6222} == CLUSTER_PORTS
    assert len(set(ports.by_var.values())) == len(ports.by_var), "every process its own port"


def test_a_taken_port_is_reported() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        free = free_port()
        ports = Ports({"GATEWAY_PORT": taken, "NATS_PORT": free})
        assert taken_ports(ports) == [("GATEWAY_PORT", taken)]


def test_healthcheck_fails_fast_when_nothing_listens() -> None:
    assert healthcheck.main([f"127.0.0.1:{free_port()}", "orders.v1.OrderService"]) == 1
    assert healthcheck.main([]) == 2


def test_dotenv_values_drop_trailing_comments_and_keep_empty_values(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('# a comment\nexport A=1\nB="two words"  # trailing comment\nC=3 # note\n\nPAYMENT_SVC_SEED=\n')
    assert load_dotenv(env) == {"A": "1", "B": "two words", "C": "3", "PAYMENT_SVC_SEED": ""}
