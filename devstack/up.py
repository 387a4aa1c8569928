"""``make up``: the identity provider, NATS, the services and Envoy on this machine until Ctrl-C (``CLUSTER=1``: HA)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from devstack.gateway import GatewayConfig, page_or_placeholder
from devstack.identity import DEV_ISSUER
from devstack.stack import METRICS_PORTS, SERVICES, EnvoyProcess, Stack

__all__ = [
    "CLUSTER_PORTS",
    "DEFAULT_PORTS",
    "LAUNCHER_SETTINGS",
    "Ports",
    "cluster_mode",
    "load_dotenv",
    "main",
    "taken_ports",
]

ROOT = Path(__file__).resolve().parents[1]

#: The launcher's own settings (environment variables; `.env` is read too), with their defaults.
LAUNCHER_SETTINGS = {
    "STACK_DIR": "var",
    "GATEWAY_PORT": "8080",
    "GATEWAY_ADMIN_PORT": "9901",
    "NATS_PORT": "4222",
    "OIDC_PORT": "9400",
    "GATEWAY_RATE_LIMIT_PER_MINUTE": "120",
    "GATEWAY_RATE_LIMIT_BURST": "30",
    "CLUSTER": "0",
    "NATS_CLUSTER_PORT": "6222",
    "NATS_MONITOR_PORT": "8222",
    "ORDER_SVC_GRPC_PORT_2": "50061",
    "PAYMENT_SVC_GRPC_PORT_2": "50062",
    "NOTIFICATION_SVC_GRPC_PORT_2": "50063",
}
#: Nodes of the NATS cluster that ``CLUSTER=1`` runs; node ``i`` (from 0) listens on ``NATS_PORT + i``,
#: routes on ``NATS_CLUSTER_PORT + i`` and serves monitoring on ``NATS_MONITOR_PORT + i``.
CLUSTER_NODES = 3
DEFAULT_PORTS = {
    "GATEWAY_PORT": 8080,
    "GATEWAY_ADMIN_PORT": 9901,
    "NATS_PORT": 4222,
    "OIDC_PORT": 9400,
    "ORDER_SVC_GRPC_PORT": 50051,
    "PAYMENT_SVC_GRPC_PORT": 50052,
    "NOTIFICATION_SVC_GRPC_PORT": 50053,
    "ORDER_SVC_METRICS_PORT": 9101,
    "PAYMENT_SVC_METRICS_PORT": 9102,
    "NOTIFICATION_SVC_METRICS_PORT": 9103,
}
#: What ``CLUSTER=1`` listens on besides ``DEFAULT_PORTS``: the NATS routes and monitoring, the second replicas.
CLUSTER_PORTS = {
    "NATS_CLUSTER_PORT": 6222,
    "NATS_MONITOR_PORT": 8222,
    "ORDER_SVC_GRPC_PORT_2": 50061,
    "PAYMENT_SVC_GRPC_PORT_2": 50062,
    "NOTIFICATION_SVC_GRPC_PORT_2": 50063,
}
_PORT_ROLES = {
    "GATEWAY_PORT": "the gateway (Envoy)",
    "GATEWAY_ADMIN_PORT": "Envoy's admin interface",
    "NATS_PORT": "nats-server",
    "OIDC_PORT": "the development identity provider",
    "ORDER_SVC_GRPC_PORT": "order_svc",
    "PAYMENT_SVC_GRPC_PORT": "payment_svc",
    "NOTIFICATION_SVC_GRPC_PORT": "notification_svc",
    "ORDER_SVC_METRICS_PORT": "order_svc's /metrics",
    "PAYMENT_SVC_METRICS_PORT": "payment_svc's /metrics",
    "NOTIFICATION_SVC_METRICS_PORT": "notification_svc's /metrics",
    "NATS_CLUSTER_PORT": "the first NATS node's cluster routes",
    "NATS_MONITOR_PORT": "the first NATS node's monitoring",
    "ORDER_SVC_GRPC_PORT_2": "order_svc's second replica",
    "PAYMENT_SVC_GRPC_PORT_2": "payment_svc's second replica",
    "NOTIFICATION_SVC_GRPC_PORT_2": "notification_svc's second replica",
}
#: Ports the cluster derives from a base setting: (base variable, offset) of each further NATS node.
_DERIVED_PORTS = {
    f"{base}+{i}": (base, i)
    for base in ("NATS_PORT", "NATS_CLUSTER_PORT", "NATS_MONITOR_PORT")
    for i in range(1, CLUSTER_NODES)
}
# Demo defaults of `make up` that differ from the services' own: readable logs, and a mock
# payment slow enough to watch an order move (CREATED, then PAID) and to cancel it in time.
_DEMO_DEFAULTS = {"LOG_FORMAT": "console", "PAYMENT_SVC_LATENCY_MS": "2000"}
# The launcher's own: its nats-server (URL, and each service's user and password, new every run) and the data folder.
_OWNED = ("NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_DECLARE_STREAMS", "DATA_DIR")
_STYLES = {
    "oidc": "red",
    "nats": "magenta",
    "order_svc": "cyan",
    "payment_svc": "green",
    "notification_svc": "yellow",
    "envoy": "blue",
}
_EXAMPLE_ORDER = (
    '{"customerId": "alice", "lineItems": [{"sku": "SKU-1", "quantity": 2, '
    '"unitPrice": {"currencyCode": "USD", "units": "12", "nanos": 500000000}}], "paymentMethod": "pm_card_visa"}'
)


@dataclass(frozen=True)
class Ports:
    """Every port the local system listens on (all on 127.0.0.1)."""

    by_var: Mapping[str, int]

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, cluster: bool = False) -> Ports:
        """The ports of ``DEFAULT_PORTS``; with ``cluster``, also ``CLUSTER_PORTS`` and the further NATS nodes'.

        Those are named ``NATS_PORT+1`` and so on: they move with their base setting.
        """
        wanted = {**DEFAULT_PORTS, **(CLUSTER_PORTS if cluster else {})}
        ports = {var: int(env.get(var) or default) for var, default in wanted.items()}
        if cluster:
            ports |= {name: ports[base] + i for name, (base, i) in _DERIVED_PORTS.items()}
        return cls(ports)

    def __getitem__(self, var: str) -> int:
        return self.by_var[var]

    def nats_nodes(self, base: str) -> tuple[int, ...]:
        """``base`` (e.g. ``NATS_PORT``) of every node of the cluster."""
        return tuple(self[base] if i == 0 else self[f"{base}+{i}"] for i in range(CLUSTER_NODES))


def cluster_mode(env: Mapping[str, str]) -> bool:
    """``CLUSTER=1`` (or true/yes): 3 NATS nodes and 2 replicas of each service."""
    value = (env.get("CLUSTER") or LAUNCHER_SETTINGS["CLUSTER"]).strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no", ""):
        raise ValueError(f"CLUSTER={value!r} (1 or 0)")
    return value in ("1", "true", "yes")


def load_dotenv(path: Path) -> dict[str, str]:
    """The settings of a ``.env`` file, parsed by python-dotenv (comments, quotes, ``export``)."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def taken_ports(ports: Ports) -> list[tuple[str, int]]:
    """The (variable, port) pairs something else already listens on (0: any free port, -1: off, never taken)."""
    return [(var, port) for var, port in ports.by_var.items() if port > 0 and not _port_free(port)]


def _port_role(var: str) -> str:
    """What listens on the port of ``var``, and how to move it."""
    if var in _DERIVED_PORTS:
        base, i = _DERIVED_PORTS[var]
        return f"NATS node {i + 1}: {base} + {i} (set {base} to move it)"
    return f"{_PORT_ROLES[var]} (set {var} to move it)"


def _mask(uri: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", uri)


class LogFollower:
    """Follows the processes' log files and prints each new line prefixed with its process name."""

    def __init__(self, console: Console, files: Mapping[str, Path]) -> None:
        self._console = console
        self._files = dict(files)
        self._offsets = {name: (p.stat().st_size if p.exists() else 0) for name, p in self._files.items()}
        self._partial = dict.fromkeys(self._files, b"")
        self._stop = threading.Event()
        self._width = max(len(name) for name in self._files)
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._drain()

    def _drain(self) -> None:
        for name, path in self._files.items():
            try:
                with path.open("rb") as f:
                    f.seek(self._offsets[name])
                    chunk = f.read()
            except FileNotFoundError:
                continue
            if not chunk:
                continue
            self._offsets[name] += len(chunk)
            *lines, self._partial[name] = (self._partial[name] + chunk).split(b"\n")
            for line in lines:
                prefix = Text(f"{name:>{self._width}} │ ", style=_STYLES.get(name.split("-")[0], "white"))
                self._console.print(
                    prefix + Text(line.decode(errors="replace").rstrip()), soft_wrap=True, highlight=False
                )


def _summary(
    gateway: GatewayConfig, ports: Ports, root: Path, env: Mapping[str, str], admin_env: Path, cluster: bool
) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("web page", f"{gateway.url}/")
    balanced = " (balanced over both order_svc replicas)" if cluster else ""
    table.add_row("HTTP API", f"{gateway.url}/v1/orders (bearer token required){balanced}")
    table.add_row("identity", f"{gateway.issuer} (development provider: its login form signs in anyone)")
    for module, var in SERVICES.items():
        metrics = ports[METRICS_PORTS[module]]
        scrape = f", http://127.0.0.1:{metrics}/metrics" if metrics > 0 else ""
        second = f" and 127.0.0.1:{ports[f'{var}_2']}" if cluster else ""
        table.add_row(module, f"127.0.0.1:{ports[var]}{second} (gRPC{scrape})")
    if cluster:
        table.add_row("NATS", f"a {CLUSTER_NODES}-node JetStream cluster, every stream on each; one user per service")
        for i, port in enumerate(ports.nats_nodes("NATS_PORT")):
            table.add_row(f"  nats-{i + 1}", f"nats://127.0.0.1:{port}")
    else:
        table.add_row("NATS", f"nats://127.0.0.1:{ports['NATS_PORT']} (JetStream; one user per service)")
    shown = admin_env.relative_to(ROOT) if admin_env.is_relative_to(ROOT) else admin_env
    table.add_row("dead letters", f"python -m devstack.dlq --env-file {shown} list")
    table.add_row("Envoy admin", gateway.admin_url)
    uri = env.get("MONGODB_URI", "")
    table.add_row("storage", f"MongoDB at {_mask(uri)}" if uri else f"SQLite in {root / 'data'}")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    table.add_row("traces", f"OTLP to {endpoint}" if endpoint else "off (set OTEL_EXPORTER_OTLP_ENDPOINT)")
    table.add_row("logs", f"{root}/{{logs,nats,envoy,identity}}/*.log")
    return Panel(table, title="[bold green]order-saga is up", expand=False)


def _try_it(gateway: GatewayConfig, ports: Ports) -> str:
    auth = '-H "Authorization: Bearer $TOKEN"'
    # `orders token` signs in at the development provider on its default address unless told otherwise.
    elsewhere = "" if gateway.issuer == DEV_ISSUER else f" --issuer {gateway.issuer}"
    return (
        "Try it (Ctrl-C stops everything). Every API call needs a token; get one for a customer:\n"
        f"  TOKEN=$(.venv/bin/orders token alice{elsewhere})\n"
        f"  curl -s -X POST {gateway.url}/v1/orders {auth} -H 'Content-Type: application/json' "
        f"-d '{_EXAMPLE_ORDER}'\n"
        f"  curl -s '{gateway.url}/v1/orders?pageSize=5' {auth}\n"
        f"  curl -sN {gateway.url}/v1/orders/ORDER_ID:watch {auth}\n"
        f"  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{}}' "
        f"127.0.0.1:{ports['ORDER_SVC_GRPC_PORT']} orders.v1.OrderService/ListOrders"
    )


def _rate_limit(env: Mapping[str, str]) -> tuple[int, int]:
    """GATEWAY_RATE_LIMIT_PER_MINUTE and GATEWAY_RATE_LIMIT_BURST (ValueError names a bad one)."""
    values = []
    for var in ("GATEWAY_RATE_LIMIT_PER_MINUTE", "GATEWAY_RATE_LIMIT_BURST"):
        raw = env.get(var) or LAUNCHER_SETTINGS[var]
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{var}={raw!r} (a whole number, at least 1)")
        values.append(int(raw))
    return values[0], values[1]


async def _run(console: Console, env: dict[str, str], ports: Ports, root: Path, cluster: bool = False) -> int:
    # Everything set in the environment or .env reaches the services, except what the launcher owns:
    # its nats-server's URL and credentials, and the data folder (STACK_DIR).
    stack_env = {**_DEMO_DEFAULTS, **{k: v for k, v in env.items() if k not in _OWNED}}
    stack_env.update({var: str(ports[var]) for var in (*SERVICES.values(), *METRICS_PORTS.values())})
    stack = (
        Stack(
            root,
            env=stack_env,
            oidc_port=ports["OIDC_PORT"],
            nats_nodes=CLUSTER_NODES,
            nats_ports=ports.nats_nodes("NATS_PORT"),
            nats_route_ports=ports.nats_nodes("NATS_CLUSTER_PORT"),
            nats_monitor_ports=ports.nats_nodes("NATS_MONITOR_PORT"),
        )
        if cluster
        else Stack(root, env=stack_env, nats_port=ports["NATS_PORT"], oidc_port=ports["OIDC_PORT"])
    )
    # CLUSTER=1: a second process of each service, on its own gRPC port (same NATS, data, durables).
    seconds = {f"{module}-2": (module, ports[f"{var}_2"]) for module, var in SERVICES.items()} if cluster else {}
    per_minute, burst = _rate_limit(env)
    gateway = stack.gateway_config(  # trusts the provider order_svc trusts (this one, unless OIDC_* say otherwise)
        port=ports["GATEWAY_PORT"],
        admin_port=ports["GATEWAY_ADMIN_PORT"],
        page=page_or_placeholder(root / "envoy"),
        rate_limit_per_minute=per_minute,
        rate_limit_burst=burst,
        upstreams=(
            tuple(("127.0.0.1", port) for port in (ports["ORDER_SVC_GRPC_PORT"], ports["ORDER_SVC_GRPC_PORT_2"]))
            if cluster
            else ()
        ),
    )
    envoy = EnvoyProcess(gateway, root / "envoy")
    (root / "logs").mkdir(parents=True, exist_ok=True)
    follower = LogFollower(
        console,
        {
            "oidc": stack.identity.workdir / "oidc-provider.log",
            **stack.nats.log_files(),
            **{module: service.log_path for module, service in stack.services.items()},
            **{name: root / "logs" / f"{name}.log" for name in seconds},
            "envoy": envoy.log_path,
        },
    )
    state_file = root / "up.json"  # written once everything is healthy (pids, gateway URL), removed at stop
    state_file.unlink(missing_ok=True)  # left over by a launcher that was killed
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def start() -> None:
        nats = f"{CLUSTER_NODES} NATS nodes, 2 replicas each of" if cluster else "nats-server,"
        console.print(
            f"[bold]Starting[/] the identity provider, {nats} {', '.join(SERVICES)} and Envoy (state in {root}) …"
        )
        await stack.start()
        for module, port in seconds.values():
            await stack.add_replica(module, port)
        envoy.start()
        await envoy.wait_ready()

    starting = asyncio.create_task(start())

    def on_signal() -> None:
        stop.set()
        if not starting.done():
            starting.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    follower.start()
    code = 0
    try:
        try:
            await starting
        except asyncio.CancelledError:
            return 130
        except Exception as error:
            console.print(Panel(str(error), title="[bold red]start failed", expand=False))
            return 1
        processes = {
            "oidc": stack.identity.proc,
            **stack.nats.processes(),
            **{module: service.proc for module, service in stack.services.items()},
            **{f"{replica.module}-2": replica.proc for replica in stack.replicas},
            "envoy": envoy.proc,
        }
        state_file.write_text(
            json.dumps(
                {
                    "gateway": gateway.url,
                    "pids": {name: proc.pid for name, proc in processes.items() if proc is not None},
                },
                indent=2,
            )
        )
        console.print(_summary(gateway, ports, root, stack_env, stack.nats.admin_env_path, cluster))
        console.print(_try_it(gateway, ports), soft_wrap=True, markup=False)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            dead = [(n, p.returncode) for n, p in processes.items() if p is not None and p.poll() is not None]
            if dead and not stop.is_set():
                names = ", ".join(f"{n} (exit {c})" for n, c in dead)
                console.print(f"[bold red]{names} stopped unexpectedly; stopping the rest (logs in {root}).")
                code = 1
                break
        return code
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        console.print(
            "[bold]Stopping[/] Envoy, the services (in-flight work finishes), NATS and the identity provider …"
        )
        envoy.terminate()
        stack.stop()
        follower.stop()
        state_file.unlink(missing_ok=True)
        console.print("[bold]Stopped.[/] Data kept in " + str(root) + "; the next `make up` continues with it.")


def main() -> int:
    """Check the ports, start everything, print where it is, and stop it all on Ctrl-C or SIGTERM."""
    console = Console(highlight=False)
    env = {**load_dotenv(ROOT / ".env"), **os.environ}
    try:
        cluster = cluster_mode(env)
    except ValueError as error:
        console.print(f"[bold red]CLUSTER is wrong:[/] {error}")
        return 2
    try:
        ports = Ports.from_env(env, cluster=cluster)
    except ValueError as error:
        console.print(f"[bold red]A port setting is not a number:[/] {error}")
        return 2
    try:
        _rate_limit(env)
    except ValueError as error:
        console.print(f"[bold red]A rate limit setting is wrong:[/] {error}")
        return 2
    taken = taken_ports(ports)
    if taken:
        lines = "\n".join(f"  {port:>5}  {_port_role(var)}" for var, port in taken)
        first = taken[0][1]
        console.print(
            Panel(
                f"These ports on 127.0.0.1 are already in use:\n{lines}\n\n"
                "Is another `make up` (or docker-compose) running? Stop it first;\n"
                f"`ss -ltnp 'sport = :{first}'` shows which process holds a port.\n"
                "Or pick free ports, e.g. `GATEWAY_PORT=18080 make up`.",
                title="[bold red]ports taken",
                expand=False,
            )
        )
        return 1
    root = (ROOT / env.get("STACK_DIR", LAUNCHER_SETTINGS["STACK_DIR"])).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(console, env, ports, root, cluster))


if __name__ == "__main__":
    sys.exit(main())
