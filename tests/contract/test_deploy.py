"""The deployment files: envoy.yaml (and its rendered variants), docker-compose.yml, Dockerfile, .env.example."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
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


def test_compose_validates_offline() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
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
    for name in ("order_svc", "payment_svc", "notification_svc"):
        service = services[name]
        assert service["build"]["target"] == "service"
        assert service["command"][-1] == name
        env = service["environment"]
        assert env["MONGODB_URI"].startswith("${MONGODB_URI:-mongodb://mongo:")
        assert env["NATS_URL"] == "nats://nats:4222"
        assert {"mongo", "nats"} <= set(service["depends_on"])
    assert services["envoy"]["build"]["target"] == "gateway"
    assert "--jetstream" in services["nats"]["command"]
    assert any(v.endswith(":/data") for v in services["nats"]["volumes"])
    assert "mongosh" in str(services["mongo"]["healthcheck"]["test"])


def test_dockerfile_images_are_slim_and_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    assert {s.split()[2] for s in stages} == {"service", "gateway"}
    assert stages[0].startswith("python:3.11-slim")
    for stage in stages:
        users = re.findall(r"^USER (\S+)", stage, flags=re.MULTILINE)
        assert users, stage.splitlines()[0]
        assert users[-1] not in ("root", "0"), stage.splitlines()[0]


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


def test_env_example_lists_every_setting_with_its_default() -> None:
    expected: dict[str, str] = dict(LAUNCHER_SETTINGS)
    for cls in (OrderSettings, PaymentSettings, NotificationSettings):
        expected.update(settings_of(cls))
    documented = documented_settings()
    assert sorted(set(expected) - set(documented)) == [], "settings missing from .env.example"
    assert sorted(set(documented) - set(expected)) == [], ".env.example lists settings that do not exist"
    wrong = {k: (documented[k], v) for k, v in expected.items() if documented[k] != v}
    assert wrong == {}, "documented default differs from the code (documented, actual)"
