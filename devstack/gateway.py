"""The Envoy gateway's config: envoy.yaml (the one source of truth) rewritten for other ports, hosts and paths."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.binaries import binary

__all__ = [
    "DESCRIPTOR",
    "ENVOY_YAML",
    "PAGE",
    "GatewayConfig",
    "envoy_command",
    "page_or_placeholder",
    "render",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[1]
ENVOY_YAML = ROOT / "envoy.yaml"
DESCRIPTOR = ROOT / "gateway" / "orders_descriptor.binpb"
PAGE = ROOT / "client" / "web" / "index.html"

_TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
_HCM = "envoy.filters.network.http_connection_manager"
_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>order-saga gateway</title></head>
<body><h1>order-saga gateway</h1>
<p>The web page (<code>client/web/index.html</code>) is not in this checkout. The API works:
<code>curl http://HOST/v1/orders</code>.</p></body></html>
"""


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway listens, where order_svc is, and the files Envoy reads (absolute paths)."""

    port: int = 8080
    admin_port: int = 9901
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 50051
    listen_host: str = "127.0.0.1"
    admin_host: str = "127.0.0.1"
    descriptor: Path = DESCRIPTOR
    page: Path = PAGE

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.listen_host == '0.0.0.0' else self.listen_host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"


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


def render(config: GatewayConfig, source: Path = ENVOY_YAML) -> dict[str, Any]:
    """envoy.yaml as a dict with ``config``'s addresses and absolute file paths put in.

    Only these are rewritten: the admin and listener addresses, the order_svc endpoint
    (``STRICT_DNS`` when it is a host name, as in docker-compose), the descriptor set path
    and the web page path. Everything else is envoy.yaml as written.
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
    page_route = _one(
        (
            route
            for host in hcm["route_config"]["virtual_hosts"]
            for route in host["routes"]
            if "filename" in route.get("direct_response", {}).get("body", {})
        ),
        "route serving a file",
    )
    page_route["direct_response"]["body"]["filename"] = str(config.page)

    cluster = _one((c for c in doc["static_resources"]["clusters"] if c["name"] == "order_svc"), "order_svc cluster")
    endpoint = _one(
        (e["endpoint"] for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]),
        "order_svc endpoint",
    )
    endpoint["address"]["socket_address"] = {"address": config.upstream_host, "port_value": config.upstream_port}
    if not _is_ip(config.upstream_host):
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_PREFERRED"
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m devstack.gateway``: render envoy.yaml for other addresses; with ``--exec``, run Envoy on it."""
    parser = argparse.ArgumentParser(prog="python -m devstack.gateway", description=main.__doc__)
    parser.add_argument("--listen", default="127.0.0.1:8080", help="host:port of the gateway")
    parser.add_argument("--admin", default="127.0.0.1:9901", help="host:port of Envoy's admin interface")
    parser.add_argument("--upstream", default="127.0.0.1:50051", help="host:port of order_svc")
    parser.add_argument("--out", type=Path, default=Path("var/envoy/envoy.yaml"), help="where to write the config")
    parser.add_argument("--exec", action="store_true", help="replace this process with Envoy on the config")
    parser.add_argument("--log-level", default="warning")
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
