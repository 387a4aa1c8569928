"""The compose cluster variant: three JetStream servers with routes, a three-member MongoDB replica set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.contract.test_deploy import (
    APP_SERVICES,
    ROOT,
    SERVICES,
    compose,
    compose_tool,
    resolved_compose,
    run_compose,
)

CLUSTER = ROOT / "docker-compose.cluster.yml"
RS_SCRIPT = ROOT / "deploy" / "k8s" / "base" / "mongo-rs-initiate.js"


def cluster_config(tool: str, tmp_path: Path) -> dict[str, Any]:
    """docker-compose.yml with docker-compose.cluster.yml over it, as docker-compose resolves them (offline)."""
    env_file = tmp_path / ".env"
    env_file.write_text("")
    return resolved_compose(CLUSTER, env_file=env_file)


def flags(command: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as a dict (``--name`` alone maps to an empty string)."""
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in command if arg.startswith("--"))


def volume_at(service: dict[str, Any], path: str) -> str:
    (volume,) = [str(v).split(":")[0] for v in service.get("volumes", []) if str(v).split(":")[1] == path]
    return volume


def test_compose_cluster_validates_offline() -> None:
    run_compose(CLUSTER, args=["config", "-q"])


def test_compose_cluster_runs_three_jetstream_servers_with_routes(tmp_path: Path) -> None:
    services = cluster_config(compose_tool(), tmp_path)["services"]
    nodes = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("nats:")}
    assert len(nodes) == 3
    assert {s["image"] for s in nodes.values()} == {compose()["services"]["nats"]["image"]}
    routes = {f"nats://{name}:6222" for name in nodes}
    names = set()
    for name, node in nodes.items():
        options = flags(node["command"])
        assert "jetstream" in options, name
        assert options["cluster_name"] == "order-saga", name
        assert options["cluster"] == "nats://0.0.0.0:6222", name
        assert set(options["routes"].split(",")) == routes, name
        names.add(options["server_name"])
        assert options["store_dir"] == "/data", name
        assert "healthcheck" in node, name
    assert len(names) == 3, "JetStream clustering needs a unique server name per node"
    assert len({volume_at(node, "/data") for node in nodes.values()}) == 3, "each server its own store"


def test_compose_cluster_runs_a_three_member_replica_set_initiated_once(tmp_path: Path) -> None:
    services = cluster_config(compose_tool(), tmp_path)["services"]
    members = {name: s for name, s in services.items() if s.get("command", [None])[0] == "mongod"}
    assert len(members) == 3
    for name, member in members.items():
        command = member["command"]
        assert command[command.index("--replSet") + 1] == "rs0", name
        assert "--bind_ip_all" in command, name
    assert len({volume_at(member, "/data/db") for member in members.values()}) == 3
    init = services["mongo-init"]
    assert init["restart"] == "no"
    assert init["environment"]["RS_NAME"] == "rs0"
    assert init["environment"]["RS_MEMBERS"].split(",") == [f"{name}:27017" for name in members]
    assert {name: dep["condition"] for name, dep in init["depends_on"].items()} == dict.fromkeys(
        members, "service_healthy"
    )
    # The same script as the Kubernetes Job (deploy/k8s/base/mongo.yaml).
    (mount,) = init["volumes"]
    source, target = str(mount).split(":")[:2]
    assert Path(source) == RS_SCRIPT
    assert init["command"][-1] == target
    assert init["command"][:3] == ["mongosh", "--nodb", "--quiet"]


def test_compose_cluster_services_use_every_server_and_the_replica_set(tmp_path: Path) -> None:
    services = cluster_config(compose_tool(), tmp_path)["services"]
    nodes = [name for name, s in services.items() if str(s.get("image", "")).startswith("nats:")]
    members = services["mongo-init"]["environment"]["RS_MEMBERS"]
    for name in APP_SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["NATS_URL"].split(",") == [f"nats://{node}:4222" for node in nodes], name
        assert env["MONGODB_URI"] == f"mongodb://{members}/?replicaSet=rs0", name
        depends = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert depends["mongo-init"] == "service_completed_successfully", name
        assert all(depends[node] == "service_healthy" for node in nodes), name
    assert set(SERVICES) <= set(services), "the cluster variant keeps every service of docker-compose.yml"
