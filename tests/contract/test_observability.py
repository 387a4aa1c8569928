"""The observability variant of docker-compose and its configs, checked offline; Envoy's tracing option.

docker-compose.observability.yml (OpenTelemetry Collector, Jaeger, Prometheus, the NATS exporter,
Grafana), deploy/observability/ (the collector's and Prometheus' configs, Grafana's provisioning and
the saga's dashboard), and the ``tracing`` block devstack/gateway.py renders when asked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

import chassis.metrics
import order_svc.metrics
from devstack.gateway import TRACING_CLUSTER, GatewayConfig, render, tracing_settings
from tests.contract.test_deploy import envoy_validate, hcm, resolved_compose, run_compose

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "docker-compose.observability.yml"
DEPLOY = ROOT / "deploy" / "observability"
PROMETHEUS = DEPLOY / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "saga.json"
SERVICES = {"order_svc": 9101, "payment_svc": 9102, "notification_svc": 9103}
BACKENDS = {"otelcol", "jaeger", "prometheus", "grafana", "nats_exporter"}


def resolved() -> dict[str, Any]:
    """Both files as docker-compose merges them (offline; none of the caller's compose variables)."""
    return resolved_compose(OVERRIDE)


def test_the_observability_variant_validates_offline() -> None:
    run_compose(OVERRIDE, args=["config", "-q"])


def test_the_services_and_envoy_export_to_the_collector_and_serve_metrics_on_the_network() -> None:
    services = resolved()["services"]
    assert set(services) >= BACKENDS
    for name, port in SERVICES.items():
        env = services[name]["environment"]
        prefix = name.upper()
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otelcol:4317"
        assert (env[f"{prefix}_METRICS_HOST"], env[f"{prefix}_METRICS_PORT"]) == ("0.0.0.0", str(port))
        assert env["NATS_URL"] == "nats://nats:4222"  # the base file's settings are still there
    envoy = services["envoy"]
    assert envoy["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otelcol:4317"
    assert envoy["environment"]["OIDC_JWKS_URL"] == "http://oidc:9400/jwks"
    assert "0.0.0.0:9901" in envoy["command"]
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert services["nats_exporter"]["image"].startswith("natsio/prometheus-nats-exporter:")
    assert services["nats_exporter"]["command"][-1] == "http://nats:8222"


def test_only_loopback_ports_are_published() -> None:
    published: dict[str, set[int]] = {}
    for name, service in resolved()["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, str):  # docker-compose 1.x: "HOST_IP:PUBLISHED:TARGET"
                host_ip, published_port, _ = port.split(":")
                port = {"host_ip": host_ip, "published": published_port}
            assert port["host_ip"] == "127.0.0.1", (name, port)
            published.setdefault(name, set()).add(int(port["published"]))
    assert published["jaeger"] == {16686}
    assert published["prometheus"] == {9090}
    assert published["grafana"] == {3000}
    assert not {"otelcol", "nats_exporter", *SERVICES} & set(published)


def test_the_collector_takes_otlp_and_sends_traces_to_jaeger() -> None:
    config = yaml.safe_load((DEPLOY / "otelcol.yaml").read_text())
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert set(pipeline["processors"]) <= set(config["processors"])


def test_prometheus_scrapes_every_service_envoy_and_nats() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for c in job["static_configs"] for t in c["targets"]] for name, job in jobs.items()}
    for name, port in SERVICES.items():
        assert targets[name] == [f"{name}:{port}"]
    assert targets["envoy"] == ["envoy:9901"]
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert targets["nats"] == ["nats_exporter:7777"]


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ── The dashboard ────────────────────────────────────────────────────────────────────────────

_FUNCTIONS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "topk",
    "bottomk",
    "clamp_min",
    "clamp_max",
    "abs",
    "delta",
    "deriv",
    "time",
    "vector",
    "scalar",
}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def exported_series() -> set[str]:
    """Every series name the services' own metrics produce (a counter's ``_total``, a histogram's parts)."""
    names: set[str] = set()
    for module in (chassis.metrics, order_svc.metrics):
        for value in vars(module).values():
            if isinstance(value, Counter):
                (family,) = value.describe()
                names.add(f"{family.name}_total")
            elif isinstance(value, Histogram):
                (family,) = value.describe()
                names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
            elif isinstance(value, Gauge):
                (family,) = value.describe()
                names.add(family.name)
    return names


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping labels and ranges left out)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word = match.group(0)
        followed_by_call = bare[match.end() :].lstrip().startswith("(")
        if word in _FUNCTIONS or word in _KEYWORDS or followed_by_call:
            continue
        names.add(word)
    return names


def test_series_in_reads_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket{job="x"}[1m])))'
    assert series_in(expr) == {"grpc_server_handling_seconds_bucket"}
    assert series_in("sum by (state) (rate(orders_total[1m])) / ignoring(state) group_left outbox_pending_events") == {
        "orders_total",
        "outbox_pending_events",
    }


def test_the_dashboard_shows_the_saga_from_series_the_services_export() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    assert {"orders_total", "grpc_server_handling_seconds_bucket", "consumer_dead_letters"} <= exported
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = series_in(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert names <= exported, (panel["title"], names - exported)
            used |= names
    assert {
        "orders_total",  # throughput
        "grpc_server_handling_seconds_bucket",  # latency
        "outbox_pending_events",
        "outbox_oldest_event_age_seconds",  # outbox lag
        "consumer_pending_messages",
        "consumer_ack_pending_messages",  # consumer lag
        "consumer_dead_letters",  # dead letters
    } <= used
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = provisioned["datasources"]
    assert (source["uid"], source["url"]) == ("prometheus", "http://prometheus:9090")


# ── Envoy's tracing option ───────────────────────────────────────────────────────────────────


def test_envoy_traces_only_when_an_otlp_endpoint_is_set() -> None:
    assert tracing_settings({}) == {"otlp_endpoint": ""}
    assert tracing_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}) == {
        "otlp_endpoint": ""
    }
    doc = render(GatewayConfig(**tracing_settings({})))
    assert "tracing" not in hcm(doc)
    assert TRACING_CLUSTER not in {c["name"] for c in doc["static_resources"]["clusters"]}


def test_envoy_tracing_follows_the_otel_variables(tmp_path: Path) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otelcol:4317",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    }
    doc = render(GatewayConfig(**tracing_settings(env)))
    tracing = hcm(doc)["tracing"]
    assert tracing["random_sampling"] == {"value": 1.0}
    provider = tracing["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["service_name"] == "gateway"
    assert provider["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == TRACING_CLUSTER
    (cluster,) = [c for c in doc["static_resources"]["clusters"] if c["name"] == TRACING_CLUSTER]
    assert cluster["type"] == "STRICT_DNS"  # a host name, as in docker-compose
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "otelcol", "port_value": 4317}
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["explicit_http_config"] == {"http2_protocol_options": {}}

    http = render(
        GatewayConfig(
            **tracing_settings(
                {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otelcol:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
            )
        )
    )
    uri = hcm(http)["tracing"]["provider"]["typed_config"]["http_service"]["http_uri"]
    assert (uri["uri"], uri["cluster"]) == ("http://otelcol:4318/v1/traces", TRACING_CLUSTER)

    for name, rendered in (("grpc", doc), ("http", http)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(rendered, sort_keys=False))
        done = envoy_validate(path)
        assert done.returncode == 0, done.stdout + done.stderr
