"""The Envoy gateway's config: envoy.yaml (the one source of truth) rewritten for other ports, hosts and paths.

Also for another identity provider (issuer, audience, JWKS URL) and another per-customer write limit,
and, when an OTLP endpoint is given (``OTEL_EXPORTER_OTLP_ENDPOINT``), with OpenTelemetry tracing on.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from devstack.binaries import binary
from devstack.redoc import BUNDLE as REDOC

__all__ = [
    "DESCRIPTOR",
    "DOCS_PAGE",
    "ENVOY_YAML",
    "IDENTITY_HEADER",
    "OPENAPI",
    "PAGE",
    "REDOC",
    "TRACING_CLUSTER",
    "GatewayConfig",
    "envoy_command",
    "page_or_placeholder",
    "render",
    "token_bucket",
    "tracing_settings",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[1]
ENVOY_YAML = ROOT / "envoy.yaml"
DESCRIPTOR = ROOT / "gateway" / "orders_descriptor.binpb"
PAGE = ROOT / "client" / "web" / "index.html"
#: The API's OpenAPI document (``make gen``), served at /openapi.json, and its reference page at /docs.
OPENAPI = ROOT / "gateway" / "openapi.json"
DOCS_PAGE = ROOT / "gateway" / "docs.html"
#: The routes that serve a file, by path: each renders to the ``GatewayConfig`` field of that name.
_FILE_ROUTES = {"/": "page", "/openapi.json": "openapi", "/docs": "docs_page", "/docs/redoc.standalone.js": "redoc"}

_TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
_JWT = "envoy.filters.http.jwt_authn"
_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
_HCM = "envoy.filters.network.http_connection_manager"
#: The cluster Envoy sends its spans to (added only when tracing is on).
TRACING_CLUSTER = "opentelemetry_collector"
#: Set by jwt_authn from the verified token's ``sub`` and read by the rate limit only: a client's copy is
#: removed before any filter runs, and the gateway's own before the request goes upstream.
IDENTITY_HEADER = "x-internal-subject"
#: The development provider authenticates clients even with PKCE (any secret); a real provider's
#: web-page client is public and has none.
DEV_CLIENT_SECRET = "dev-only-not-a-secret"
#: Where the development provider (oidc-provider-mock) serves its signing keys, under its issuer URL.
_DEV_JWKS_PATH = "/jwks"
#: The CA bundle Envoy checks an https JWKS endpoint against (Debian and the gateway image's path).
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>order-saga gateway</title></head>
<body><h1>order-saga gateway</h1>
<p>The web page (<code>client/web/index.html</code>) is not in this checkout. The API works:
<code>curl http://HOST/v1/orders</code>.</p></body></html>
"""
_NO_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Order saga API reference</title></head>
<body><h1>Order saga API reference</h1>
<p>The reference page's script (Redoc) is not installed with this gateway: run <code>make docs-ui</code>
(it needs npm). The API's OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway listens, where order_svc is, the files Envoy reads, whose tokens it trusts, the write limit.

    File paths are absolute. ``issuer`` is the URL the tokens name (``iss``): where browsers and the
    CLI reach the provider. ``jwks_url`` is where Envoy fetches the signing keys, and where it sends
    ``/oauth2/token`` for the web page; by default the development provider's ``/jwks`` under the
    issuer. Inside docker-compose it is the provider's address on the compose network, while the
    issuer stays the public one. ``upstreams`` lists several order_svc replicas as ``(host, port)``
    pairs, which Envoy balances over (each health-checked); empty, the one ``upstream_host:upstream_port``.
    """

    port: int = 8080
    admin_port: int = 9901
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 50051
    listen_host: str = "127.0.0.1"
    admin_host: str = "127.0.0.1"
    descriptor: Path = DESCRIPTOR
    page: Path = PAGE
    openapi: Path = OPENAPI
    docs_page: Path = DOCS_PAGE
    redoc: Path = REDOC  # absent (no npm): /docs is a notice and the script's path a 404
    issuer: str = "http://127.0.0.1:9400"
    audience: str = "order-saga"
    jwks_url: str = ""
    client_secret: str = DEV_CLIENT_SECRET
    rate_limit_per_minute: int = 120
    rate_limit_burst: int = 30
    #: Where Envoy exports its spans (OTLP, ``http://host:port``); empty: no tracing block at all (the default).
    otlp_endpoint: str = ""
    #: ``grpc`` (an HTTP/2 cluster, the collector's 4317) or ``http/protobuf`` (POST ``/v1/traces``, its 4318).
    otlp_protocol: str = "grpc"
    #: Percent of requests without a sampled ``traceparent`` that Envoy starts a trace for.
    trace_sampling_percent: float = 100.0
    upstreams: tuple[tuple[str, int], ...] = ()
    #: Benchmark baseline only (``python -m bench --auth-cost``): False renders no jwt_authn filter, so no
    #: request is checked for a token (and the write limit, finding no subject, limits nothing). Never deploy it.
    verify_tokens: bool = True

    def __post_init__(self) -> None:
        if self.rate_limit_per_minute < 1 or self.rate_limit_burst < 1:
            raise ValueError("the rate limit (per minute) and its burst must be at least 1")
        if self.otlp_endpoint and (
            urlsplit(self.otlp_endpoint).scheme not in ("http", "https") or not urlsplit(self.otlp_endpoint).hostname
        ):
            raise ValueError(f"not an http(s) OTLP endpoint: {self.otlp_endpoint!r}")
        if self.otlp_protocol not in ("grpc", "http/protobuf"):
            raise ValueError(f"OTLP protocol {self.otlp_protocol!r}: use grpc or http/protobuf")
        if not 0 <= self.trace_sampling_percent <= 100:
            raise ValueError("the trace sampling percentage must be between 0 and 100")
        for url in (self.issuer, self.keys_url):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"not an http(s) URL: {url!r}")

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.listen_host == '0.0.0.0' else self.listen_host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    @property
    def order_svc_endpoints(self) -> tuple[tuple[str, int], ...]:
        """Every order_svc replica the gateway sends to: ``upstreams``, else ``upstream_host:upstream_port``."""
        return self.upstreams or ((self.upstream_host, self.upstream_port),)

    @property
    def keys_url(self) -> str:
        """The JWKS URL Envoy fetches (``jwks_url``, else the development provider's under the issuer)."""
        return self.jwks_url or f"{self.issuer.rstrip('/')}{_DEV_JWKS_PATH}"

    def page_config(self) -> dict[str, str]:
        """``GET /config.json``: what the web page needs to sign in at the provider and get a token."""
        issuer = self.issuer.rstrip("/")
        config = {
            "issuer": self.issuer,
            "clientId": self.audience,  # an ID token's audience is the client it was issued to
            "clientSecret": self.client_secret,
            "authorizationEndpoint": f"{issuer}/oauth2/authorize",
            "tokenEndpoint": "/oauth2/token",  # the gateway's route to the provider (same origin as the page)
        }
        if not self.client_secret:
            del config["clientSecret"]
        return config


def _one(items: Iterator[dict[str, Any]], what: str) -> dict[str, Any]:
    found = list(items)
    if len(found) != 1:
        raise ValueError(f"envoy.yaml: expected exactly one {what}, found {len(found)}")
    return found[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def token_bucket(per_minute: int, burst: int) -> dict[str, Any]:
    """An Envoy token bucket: ``burst`` at once, refilled at ``per_minute`` (fills at least 50 ms apart)."""
    if per_minute <= 1200:
        seconds = f"{60 / per_minute:.3f}".rstrip("0").rstrip(".")
        return {"max_tokens": burst, "tokens_per_fill": 1, "fill_interval": f"{seconds}s"}
    return {"max_tokens": burst, "tokens_per_fill": round(per_minute / 1200), "fill_interval": "0.05s"}


def _point_cluster_at(cluster: dict[str, Any], host: str, port: int, what: str) -> None:
    endpoint = _one(
        (e["endpoint"] for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]),
        f"{what} endpoint",
    )
    endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
    if not _is_ip(host):
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_PREFERRED"


def _point_cluster_at_all(cluster: dict[str, Any], endpoints: Sequence[tuple[str, int]], what: str) -> None:
    """``cluster``'s one endpoint in envoy.yaml, repeated for each of ``endpoints`` (the same settings each)."""
    group = _one(iter(cluster["load_assignment"]["endpoints"]), f"{what} endpoint group")
    template = _one(iter(group["lb_endpoints"]), f"{what} endpoint")
    group["lb_endpoints"] = []
    for host, port in endpoints:
        entry = copy.deepcopy(template)
        entry["endpoint"]["address"]["socket_address"] = {"address": host, "port_value": port}
        group["lb_endpoints"].append(entry)
        if not _is_ip(host):
            cluster["type"] = "STRICT_DNS"
            cluster["dns_lookup_family"] = "V4_PREFERRED"


def _authority(url: str) -> tuple[str, int, str]:
    """Host, port and the Host header value of an http(s) URL."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port, parts.netloc


def _routes(hcm: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for host in hcm["route_config"]["virtual_hosts"]:
        yield from host["routes"]


def _render_identity(doc: dict[str, Any], hcm: dict[str, Any], config: GatewayConfig) -> None:
    """The provider jwt_authn trusts, the cluster its keys come from, the token route and /config.json."""
    jwt = _one((f["typed_config"] for f in hcm["http_filters"] if f["name"] == _JWT), "jwt_authn filter")
    provider = _one(iter(jwt["providers"].values()), "jwt_authn provider")
    provider["issuer"] = config.issuer  # exactly as the tokens say it (Auth0's ends in a slash)
    provider["audiences"] = [config.audience]
    provider["remote_jwks"]["http_uri"]["uri"] = config.keys_url

    keys_host, keys_port, _ = _authority(config.keys_url)
    cluster_name = provider["remote_jwks"]["http_uri"]["cluster"]
    cluster = _one((c for c in doc["static_resources"]["clusters"] if c["name"] == cluster_name), "provider cluster")
    _point_cluster_at(cluster, keys_host, keys_port, "provider")
    if urlsplit(config.keys_url).scheme == "https":
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": keys_host,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": {"filename": CA_BUNDLE},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": keys_host}}],
                    }
                },
            },
        }

    token_route = _one(
        (r for r in _routes(hcm) if r.get("route", {}).get("cluster") == cluster_name), "route to the provider"
    )
    token_route["route"]["host_rewrite_literal"] = _authority(config.issuer)[2]
    config_route = _one(
        (r for r in _routes(hcm) if r["match"].get("path") == "/config.json"), "route serving /config.json"
    )
    config_route["direct_response"]["body"] = {"inline_string": json.dumps(config.page_config(), separators=(",", ":"))}


def _render_files(hcm: dict[str, Any], config: GatewayConfig) -> None:
    """The files the gateway serves (page, OpenAPI document, reference page, Redoc), or a notice without Redoc."""
    served = [r for r in _routes(hcm) if "filename" in r.get("direct_response", {}).get("body", {})]
    if sorted(r["match"].get("path", "") for r in served) != sorted(_FILE_ROUTES):
        raise ValueError(f"envoy.yaml: expected routes serving files at {sorted(_FILE_ROUTES)}")
    for route in served:
        route["direct_response"]["body"]["filename"] = str(getattr(config, _FILE_ROUTES[route["match"]["path"]]))
    if not config.redoc.is_file():
        for route in served:
            if route["match"]["path"] == "/docs":
                route["direct_response"]["body"] = {"inline_string": _NO_REDOC}
            elif route["match"]["path"] == "/docs/redoc.standalone.js":
                route["direct_response"] = {
                    "status": 404,
                    "body": {
                        "inline_string": "the reference page's script (Redoc) is not installed: run `make docs-ui`"
                    },
                }
                route.pop("response_headers_to_add", None)


def _render_rate_limit(hcm: dict[str, Any], config: GatewayConfig) -> None:
    """The write limit's per-customer token bucket, from ``config``."""
    limit = _one((f["typed_config"] for f in hcm["http_filters"] if f["name"] == _RATE_LIMIT), "local_ratelimit")
    descriptor = _one(iter(limit["descriptors"]), "rate limit descriptor")
    descriptor["token_bucket"] = token_bucket(config.rate_limit_per_minute, config.rate_limit_burst)


def tracing_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``GatewayConfig`` tracing fields the standard ``OTEL_*`` variables ask for (as the services read them).

    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns it on (unless
    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``); ``OTEL_EXPORTER_OTLP_PROTOCOL`` picks
    gRPC or HTTP; a ``traceidratio`` sampler's ``OTEL_TRACES_SAMPLER_ARG`` becomes Envoy's random sampling.
    """
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    off = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or (
        env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none"
    )
    if not endpoint or off:
        return {"otlp_endpoint": ""}
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    percent = 100.0
    if sampler in ("traceidratio", "parentbased_traceidratio"):
        percent = min(max(float(env.get("OTEL_TRACES_SAMPLER_ARG") or "1.0"), 0.0), 1.0) * 100
    elif sampler in ("always_off", "parentbased_always_off"):
        percent = 0.0
    return {"otlp_endpoint": endpoint, "otlp_protocol": protocol, "trace_sampling_percent": percent}


def _render_tracing(doc: dict[str, Any], hcm: dict[str, Any], config: GatewayConfig) -> None:
    """OpenTelemetry tracing: a SERVER span per request (``service.name`` gateway), exported to the collector.

    An incoming W3C ``traceparent`` is continued; the request goes upstream with Envoy's own span as
    the parent, so order_svc's server span is its child.
    """
    host, port, netloc = _authority(config.otlp_endpoint)
    cluster: dict[str, Any] = {
        "name": TRACING_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": TRACING_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {}}}}]}],
        },
    }
    otel: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        "service_name": "gateway",
    }
    if config.otlp_protocol == "grpc":
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
        otel["grpc_service"] = {"envoy_grpc": {"cluster_name": TRACING_CLUSTER, "authority": netloc}, "timeout": "1s"}
    else:
        uri = f"{config.otlp_endpoint.rstrip('/')}/v1/traces"
        otel["http_service"] = {"http_uri": {"uri": uri, "cluster": TRACING_CLUSTER, "timeout": "1s"}}
    if urlsplit(config.otlp_endpoint).scheme == "https":
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": host,
                "common_tls_context": {"validation_context": {"trusted_ca": {"filename": CA_BUNDLE}}},
            },
        }
    _point_cluster_at(cluster, host, port, "collector")
    doc["static_resources"]["clusters"].append(cluster)
    hcm["tracing"] = {
        "random_sampling": {"value": config.trace_sampling_percent},
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": otel},
    }


def render(config: GatewayConfig, source: Path = ENVOY_YAML) -> dict[str, Any]:
    """envoy.yaml as a dict with ``config``'s addresses and absolute file paths put in.

    Only these are rewritten: the admin and listener addresses, the order_svc endpoints
    (``STRICT_DNS`` when one is a host name, as in docker-compose), the descriptor set path,
    the paths of the files served (the web page, the OpenAPI document, the reference page and
    its Redoc script; without Redoc, /docs is a notice), the identity provider (jwt_authn's
    issuer, audience and JWKS URL, the provider's cluster, the Host of ``/oauth2/token``,
    ``/config.json``) and the write limit's token buckets; with ``otlp_endpoint``, a ``tracing``
    block and the collector's cluster are added. Everything else is envoy.yaml as written, except
    with ``verify_tokens=False`` (benchmark baseline only): then the jwt_authn filter, its provider
    and its rules are left out.
    """
    doc: dict[str, Any] = yaml.safe_load(source.read_text())
    doc["admin"]["address"]["socket_address"] = {"address": config.admin_host, "port_value": config.admin_port}

    listener = _one((x for x in doc["static_resources"]["listeners"] if x["name"] == "gateway"), "listener")
    listener["address"]["socket_address"] = {"address": config.listen_host, "port_value": config.port}
    hcm = _one(
        (f["typed_config"] for chain in listener["filter_chains"] for f in chain["filters"] if f["name"] == _HCM),
        "http_connection_manager",
    )
    transcoder = _one((f["typed_config"] for f in hcm["http_filters"] if f["name"] == _TRANSCODER), "transcoder")
    transcoder["proto_descriptor"] = str(config.descriptor)
    _render_files(hcm, config)

    cluster = _one((c for c in doc["static_resources"]["clusters"] if c["name"] == "order_svc"), "order_svc cluster")
    _point_cluster_at_all(cluster, config.order_svc_endpoints, "order_svc")
    _render_identity(doc, hcm, config)
    _render_rate_limit(hcm, config)
    if config.otlp_endpoint:
        _render_tracing(doc, hcm, config)
    if not config.verify_tokens:
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != _JWT]
    return doc


def write_config(config: GatewayConfig, dest: Path, source: Path = ENVOY_YAML) -> Path:
    """Render ``source`` for ``config`` into ``dest`` (YAML) and return ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(render(config, source), sort_keys=False))
    return dest


def page_or_placeholder(workdir: Path) -> Path:
    """The client's web page; if this checkout has none, a generated notice page (Envoy needs a file)."""
    if PAGE.is_file():
        return PAGE
    placeholder = workdir / "placeholder-index.html"
    placeholder.parent.mkdir(parents=True, exist_ok=True)
    placeholder.write_text(_PLACEHOLDER)
    return placeholder


def envoy_command(config_path: Path, base_id: int, log_level: str = "warning") -> list[str]:
    """The Envoy command line for a rendered config; ``base_id`` must be unique per Envoy on a machine."""
    return [binary("envoy"), "-c", str(config_path), "--base-id", str(base_id), "--log-level", log_level]


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """``python -m devstack.gateway``: render envoy.yaml for other addresses; with ``--exec``, run Envoy on it.

    The identity and rate-limit options default to the settings the services share (``OIDC_ISSUER``,
    ``OIDC_AUDIENCE``, ``OIDC_JWKS_URL``) and the gateway's own (``GATEWAY_RATE_LIMIT_PER_MINUTE``,
    ``GATEWAY_RATE_LIMIT_BURST``), so docker-compose configures the gateway like order_svc. Tracing
    follows the standard ``OTEL_*`` variables, as in the services (``tracing_settings``).
    """
    env = os.environ if environ is None else environ
    defaults = GatewayConfig()
    parser = argparse.ArgumentParser(prog="python -m devstack.gateway", description=main.__doc__)
    parser.add_argument("--listen", default="127.0.0.1:8080", help="host:port of the gateway")
    parser.add_argument("--admin", default="127.0.0.1:9901", help="host:port of Envoy's admin interface")
    parser.add_argument("--upstream", default="127.0.0.1:50051", help="host:port of order_svc")
    parser.add_argument("--out", type=Path, default=Path("var/envoy/envoy.yaml"), help="where to write the config")
    parser.add_argument("--exec", action="store_true", help="replace this process with Envoy on the config")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--issuer", default=env.get("OIDC_ISSUER") or defaults.issuer, help="the tokens' `iss` (OIDC_ISSUER)"
    )
    parser.add_argument(
        "--audience", default=env.get("OIDC_AUDIENCE") or defaults.audience, help="the tokens' `aud` (OIDC_AUDIENCE)"
    )
    parser.add_argument(
        "--jwks-url",
        default=env.get("OIDC_JWKS_URL", ""),
        help="the provider's signing keys (OIDC_JWKS_URL; default: the development provider's, ISSUER/jwks)",
    )
    parser.add_argument(
        "--rate-limit-per-minute",
        type=int,
        default=int(env.get("GATEWAY_RATE_LIMIT_PER_MINUTE") or defaults.rate_limit_per_minute),
        help="orders a customer may place or cancel per minute (GATEWAY_RATE_LIMIT_PER_MINUTE)",
    )
    parser.add_argument(
        "--rate-limit-burst",
        type=int,
        default=int(env.get("GATEWAY_RATE_LIMIT_BURST") or defaults.rate_limit_burst),
        help="... and at once (GATEWAY_RATE_LIMIT_BURST)",
    )
    args = parser.parse_args(argv)
    host, port = _hostport(args.listen)
    admin_host, admin_port = _hostport(args.admin)
    upstream_host, upstream_port = _hostport(args.upstream)
    out: Path = args.out.resolve()
    config = GatewayConfig(
        port=port,
        admin_port=admin_port,
        upstream_host=upstream_host,
        upstream_port=upstream_port,
        listen_host=host,
        admin_host=admin_host,
        page=page_or_placeholder(out.parent),
        issuer=args.issuer,
        audience=args.audience,
        jwks_url=args.jwks_url,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limit_burst=args.rate_limit_burst,
        **tracing_settings(env),
    )
    write_config(config, out)
    if not args.exec:
        print(out)
        return
    command = envoy_command(out, base_id=port, log_level=args.log_level)
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
