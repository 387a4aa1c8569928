"""Test fixtures shared by every suite: real nats-servers (alone or a cluster) and service processes, and waits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import grpc
import nats
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client as NatsClient

from devstack.binaries import binary
from devstack.gateway import GatewayConfig, envoy_command, tracing_settings, write_config
from devstack.identity import OidcProvider
from devstack.natsauth import ADMIN, BOOTSTRAP, Credentials, bootstrap, render, streams, write_private
from devstack.procs import (
    ROOT,
    child_process_options,
    free_port,
    log_tail,
    orphan_safe,
    stop_process,
    wait_for,
    wait_for_port,
)

__all__ = [
    "METRICS_PORTS",
    "SERVICES",
    "ClusterNode",
    "EnvoyProcess",
    "NatsCluster",
    "NatsServer",
    "ServiceProcess",
    "Stack",
    "child_process_options",
    "free_port",
    "orphan_safe",
    "wait_for",
    "wait_for_port",
]

T = TypeVar("T")


def _in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end on a thread of its own: callers may be inside a running event loop."""
    with ThreadPoolExecutor(1, thread_name_prefix="nats-admin") as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


@dataclass(frozen=True)
class ClusterNode:
    """One server's place in a JetStream cluster on loopback: the cluster, its own name, every route port."""

    cluster_name: str
    server_name: str
    route_port: int
    route_ports: tuple[int, ...]

    def args(self) -> list[str]:
        """nats-server options: its name, the cluster's, where it listens for routes and every route to solicit."""
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.route_ports)
        return [
            "--server_name",
            self.server_name,
            "--cluster_name",
            self.cluster_name,
            "--cluster",
            f"nats://127.0.0.1:{self.route_port}",
            "--routes",
            routes,
        ]


class NatsServer:
    """A real nats-server with JetStream on a free port; can be stopped and restarted on the same port and store.

    With ``auth`` (the default) it runs as the system does: one user per service with least-privilege
    allow-lists, a ``bootstrap`` user and an ``admin`` (``devstack.natsauth``), random passwords for
    this run (kept across restarts), the config written with mode 0600 into ``store_dir``, next to
    ``admin.env`` (``NATS_URL``/``NATS_USER``/``NATS_PASSWORD`` for operator tools such as
    ``python -m devstack.dlq --env-file``). ``url`` connects as the admin (tests, tools);
    ``address`` plus ``credentials_env(service)`` is what a service gets. With ``streams`` (the
    default), every start declares the streams as the ``bootstrap`` user before returning.

    ``credentials`` shares one set of passwords between servers (the nodes of a ``NatsCluster``);
    ``cluster`` makes it one node of a cluster, which also serves monitoring (``/healthz``) on
    ``monitor_port``.
    """

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        auth: bool = True,
        streams: bool = True,
        credentials: Credentials | None = None,
        cluster: ClusterNode | None = None,
        monitor_port: int | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.credentials = (credentials or Credentials.generate()) if auth else None
        self.declares_streams = streams
        self.cluster = cluster
        self.monitor_port = monitor_port or (free_port() if cluster is not None else None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def name(self) -> str:
        """The server's name in its cluster (``nats`` when it runs alone)."""
        return self.cluster.server_name if self.cluster is not None else "nats"

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def address(self) -> str:
        """The server's URL, no credentials in it."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL a client with every right connects with (the admin's credentials in it, with ``auth``)."""
        if self.credentials is None:
            return self.address
        return f"nats://{ADMIN}:{self.credentials.password(ADMIN)}@127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir / "nats-users.conf"

    @property
    def admin_env_path(self) -> Path:
        return self.store_dir / "admin.env"

    def credentials_env(self, user: str) -> dict[str, str]:
        """``NATS_USER`` and ``NATS_PASSWORD`` of ``user`` (a service, or ``admin``) here; none without ``auth``."""
        if self.credentials is None:
            return {}
        return {"NATS_USER": user, "NATS_PASSWORD": self.credentials.password(user)}

    def _write_auth(self) -> list[str]:
        if self.credentials is None:
            return []
        write_private(self.config_path, render(self.credentials.passwords))
        admin = {"NATS_URL": self.address, **self.credentials_env(ADMIN)}
        write_private(self.admin_env_path, "".join(f"{key}={value}\n" for key, value in admin.items()))
        return ["-c", str(self.config_path)]

    def start(self) -> NatsServer:
        self.launch()
        self.wait_listening()
        if self.declares_streams:
            self.declare_streams()
        return self

    def launch(self) -> None:
        """Start the process (its config written first) without waiting for it."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_auth()
        cluster = self.cluster.args() if self.cluster is not None else []
        monitor = ["-m", str(self.monitor_port)] if self.monitor_port is not None else []
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            orphan_safe(
                [
                    binary("nats-server"),
                    *config,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    *monitor,
                    *cluster,
                    "-js",
                    "-sd",
                    str(self.store_dir),
                ]
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            **child_process_options(),
        )

    def wait_listening(self, timeout: float = 20.0) -> None:
        wait_for_port(self.port, timeout=timeout, proc=self.proc)

    def healthy(self) -> bool:
        """The monitoring ``/healthz``: up, and its JetStream current with the cluster (needs ``monitor_port``)."""
        if self.monitor_port is None or self.proc is None or self.proc.poll() is not None:
            return False
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed; ``start()`` brings it back on the same ports and store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def declare_streams(self) -> None:
        """Declare the streams as the ``bootstrap`` user (what ``python -m devstack.natsauth bootstrap`` does)."""
        user = BOOTSTRAP if self.credentials is not None else None
        password = self.credentials.password(BOOTSTRAP) if self.credentials is not None else None
        # A thread of its own: start() is called from inside a running event loop (tests, `make up`).
        _in_thread(lambda: bootstrap(self.address, user, password, timeout=20))

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The running process by name (as ``NatsCluster.processes``)."""
        return {self.name: self.proc} if self.proc is not None else {}

    def log_files(self) -> dict[str, Path]:
        return {self.name: self.log_path}

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class NatsCluster:
    """A JetStream cluster of ``size`` nats-servers on 127.0.0.1 (``nats-1``, ``nats-2``, ...), each its own store.

    Every node runs with the same users and passwords (``devstack.natsauth``), its own client port,
    route port (``--cluster``; ``--routes`` lists every node's) and monitoring port. ``start`` starts
    them together and, with ``streams``, declares every stream on ``replicas`` servers (every node, at
    most 3) as the ``bootstrap`` user, then waits until each has a leader. A node can crash (``kill``,
    SIGKILL) and come back on the same ports and store (``restart``); ``wait_rejoined`` waits until it
    is current again, ``wait_leaders`` until every stream and durable consumer has a leader, and
    ``stepdown`` makes a stream's leader step down (as the admin). ``address`` lists every node's URL,
    comma-separated: the ``NATS_URL`` a service gets; ``admin_env`` holds the same list.
    """

    def __init__(
        self,
        store_dir: Path,
        size: int = 3,
        ports: Sequence[int] = (),
        route_ports: Sequence[int] = (),
        monitor_ports: Sequence[int] = (),
        *,
        name: str = "order-saga",
        auth: bool = True,
        streams: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one server")
        for given in (ports, route_ports, monitor_ports):
            if given and len(given) != size:
                raise ValueError(f"{size} servers need {size} ports, not {len(given)}")
        self.store_dir = store_dir
        self.credentials = Credentials.generate() if auth else None
        self.declares_streams = streams
        self.replicas = min(size, 3)
        clients = list(ports) or [free_port() for _ in range(size)]
        routes = tuple(route_ports) or tuple(free_port() for _ in range(size))
        monitors = list(monitor_ports) or [free_port() for _ in range(size)]
        self.nodes = [
            NatsServer(
                store_dir / f"nats-{i + 1}",
                clients[i],
                auth=auth,
                streams=False,
                credentials=self.credentials,
                cluster=ClusterNode(name, f"nats-{i + 1}", routes[i], routes),
                monitor_port=monitors[i],
            )
            for i in range(size)
        ]

    @property
    def address(self) -> str:
        """Every node's URL, comma-separated (no credentials): what ``NATS_URL`` says."""
        return ",".join(node.address for node in self.nodes)

    @property
    def url(self) -> str:
        """Every node's URL with the admin's credentials, comma-separated (``chassis.bus.server_urls`` splits it)."""
        return ",".join(node.url for node in self.nodes)

    @property
    def admin_env_path(self) -> Path:
        return self.store_dir / "admin.env"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The first node's process (``processes()`` has every node's)."""
        return self.nodes[0].proc

    def credentials_env(self, user: str) -> dict[str, str]:
        return self.nodes[0].credentials_env(user)

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: proc for node in self.nodes for name, proc in node.processes().items()}

    def log_files(self) -> dict[str, Path]:
        return {node.name: node.log_path for node in self.nodes}

    def index_of(self, server_name: str) -> int:
        """The position in ``nodes`` of the server named ``server_name``."""
        return [node.name for node in self.nodes].index(server_name)

    def start(self) -> NatsCluster:
        """Start every node at once (a cluster needs a quorum), declare the streams, wait for their leaders."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_listening()
        if self.credentials is not None:
            admin = {"NATS_URL": self.address, **self.credentials_env(ADMIN)}
            write_private(self.admin_env_path, "".join(f"{key}={value}\n" for key, value in admin.items()))
        if self.declares_streams:
            user = BOOTSTRAP if self.credentials is not None else None
            password = self.credentials.password(BOOTSTRAP) if self.credentials is not None else None
            _in_thread(lambda: bootstrap(self.address, user, password, timeout=60, replicas=self.replicas))
            _in_thread(lambda: self.wait_leaders(timeout=60))
        return self

    def kill(self, index: int) -> None:
        """SIGKILL one node: the others keep serving (a quorum of a 3-node cluster is 2)."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start a killed node again, on its ports and store; ``wait_rejoined`` waits until it caught up."""
        node = self.nodes[index]
        node.launch()
        node.wait_listening()

    def stop(self) -> None:
        """SIGTERM every node at once, then wait for each (SIGKILL a laggard)."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    async def connect_admin(self) -> NatsClient:
        """A connection as the admin to the nodes now running; it follows them through a node's crash."""
        running = [node.address for node in self.nodes if node.proc is not None and node.proc.poll() is None]
        login = {"user": ADMIN, "password": self.credentials.password(ADMIN)} if self.credentials else {}
        return await nats.connect(
            running or [self.nodes[0].address],
            **login,
            connect_timeout=2,
            reconnect_time_wait=0.2,
            max_reconnect_attempts=-1,
        )

    async def raft_groups(self, nc: NatsClient) -> dict[str, Any]:
        """Each stream's and each durable consumer's cluster info (``STREAM`` and ``STREAM/durable``)."""
        js = nc.jetstream(timeout=2)
        found: dict[str, Any] = {}
        for spec in streams():
            info = await js.stream_info(spec.name)
            found[spec.name] = info.cluster
            for consumer in await js.consumers_info(spec.name):
                found[f"{spec.name}/{consumer.name}"] = consumer.cluster
        return found

    async def wait_leaders(self, timeout: float = 30.0) -> dict[str, str]:
        """Until every stream and every durable consumer has a leader; who leads each."""
        nc = await self.connect_admin()
        try:

            async def led() -> dict[str, str]:
                groups = await self.raft_groups(nc)
                leaders = {name: str(info.leader) for name, info in groups.items() if info and info.leader}
                return leaders if len(leaders) == len(groups) else {}

            return await wait_for(led, timeout=timeout, interval=0.1, what="a leader for every stream and consumer")
        finally:
            await nc.close()

    async def wait_rejoined(self, index: int, timeout: float = 60.0) -> None:
        """Until node ``index`` is healthy and current in every stream and consumer (its leader, or a current peer)."""
        node = self.nodes[index]
        nc = await self.connect_admin()
        try:

            async def current() -> bool:
                if not await asyncio.to_thread(node.healthy):
                    return False
                for info in (await self.raft_groups(nc)).values():
                    if info is None or not info.leader:
                        return False
                    peers = {peer.name: peer for peer in info.replicas or []}
                    peer = peers.get(node.name)
                    if info.leader != node.name and (peer is None or not peer.current or peer.offline):
                        return False
                return True

            await wait_for(current, timeout=timeout, interval=0.1, what=f"{node.name} to rejoin the cluster")
        finally:
            await nc.close()

    async def stream_leader(self, stream: str) -> str:
        nc = await self.connect_admin()
        try:
            leader = (await nc.jetstream(timeout=2).stream_info(stream)).cluster
            return str(leader.leader) if leader is not None and leader.leader else ""
        finally:
            await nc.close()

    async def stepdown(self, stream: str, timeout: float = 30.0) -> tuple[str, str]:
        """``$JS.API.STREAM.LEADER.STEPDOWN.<stream>`` as the admin; (old, new) leader once another one leads."""
        nc = await self.connect_admin()
        try:
            js = nc.jetstream(timeout=2)

            async def leader() -> str:
                info = (await js.stream_info(stream)).cluster
                return str(info.leader) if info is not None and info.leader else ""

            old = await wait_for(leader, timeout=timeout, interval=0.1, what=f"a leader of {stream}")
            reply = json.loads((await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=5)).data)
            if not reply.get("success"):
                raise RuntimeError(f"{stream}: the leader did not step down: {reply.get('error')}")

            async def another() -> str:
                now = await leader()
                return now if now and now != old else ""

            new = await wait_for(another, timeout=timeout, interval=0.1, what=f"a new leader of {stream}")
            return old, new
        finally:
            await nc.close()


class ServiceProcess:
    """One service as its own OS process (``python -m <module>``), with its log in a file.

    ``metrics_port`` is where it serves /metrics, when the starter chose it (None: unknown or off).
    """

    def __init__(
        self, module: str, env: Mapping[str, str], log_path: Path, grpc_port: int, metrics_port: int | None = None
    ) -> None:
        self.module = module
        self.env = dict(env)
        self.log_path = log_path
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """The service's Prometheus endpoint (``http://127.0.0.1:<port>/metrics``)."""
        if self.metrics_port is None or self.metrics_port <= 0:
            raise LookupError(f"{self.module} has no known metrics port")
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def scrape(self) -> str:
        """The text of its /metrics now (blocking; a few milliseconds on 127.0.0.1)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.metrics_url, timeout=5) as reply:
            return str(reply.read().decode())

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                orphan_safe([sys.executable, "-m", self.module]),
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                **child_process_options(),
            )
        return self

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.module} exited with {self.proc.returncode}; see {self.log_path}")
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

            try:
                await wait_for(serving, timeout=timeout, interval=0.05, what=f"{self.module} to be healthy")
            except TimeoutError as error:
                raise TimeoutError(f"{error}\n--- {self.log_path} ---\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait for the graceful stop; SIGKILL if it does not come. Returns the exit code."""
        if self.proc is None:
            return None
        code = stop_process(self.proc, timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the process freezes (no handler, ack or heartbeat) until ``resume``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


SERVICES = {
    "order_svc": "ORDER_SVC_GRPC_PORT",
    "payment_svc": "PAYMENT_SVC_GRPC_PORT",
    "notification_svc": "NOTIFICATION_SVC_GRPC_PORT",
}
#: The variable of each service's /metrics port.
METRICS_PORTS = {
    "order_svc": "ORDER_SVC_METRICS_PORT",
    "payment_svc": "PAYMENT_SVC_METRICS_PORT",
    "notification_svc": "NOTIFICATION_SVC_METRICS_PORT",
}


class Stack:
    """The identity provider, nats-server and the three services as real processes, on free ports.

    Each service's /metrics gets a free port too (``env`` may set ``<SVC>_METRICS_PORT``, -1 for
    none); another process of a service (a replica) serves its own, on a port of its own.

    With ``nats_nodes`` above 1, NATS is a ``NatsCluster`` of that many servers (``nats_ports``,
    ``nats_route_ports`` and ``nats_monitor_ports`` place them, else free ports) and every service
    gets the list of all their URLs.
    """

    def __init__(
        self,
        root: Path,
        env: Mapping[str, str] | None = None,
        nats_port: int | None = None,
        oidc_port: int | None = None,
        *,
        nats_nodes: int = 1,
        nats_ports: Sequence[int] = (),
        nats_route_ports: Sequence[int] = (),
        nats_monitor_ports: Sequence[int] = (),
    ) -> None:
        self.root = root
        self.identity = OidcProvider(root / "identity", oidc_port)
        self.nats: NatsServer | NatsCluster = (
            NatsCluster(root / "nats", nats_nodes, nats_ports, nats_route_ports, nats_monitor_ports)
            if nats_nodes > 1
            else NatsServer(root / "nats", nats_port)
        )
        self.extra_env = dict(env or {})
        self.services: dict[str, ServiceProcess] = {}
        self.replicas: list[ServiceProcess] = []
        for module, port_var in SERVICES.items():
            port = int(self.extra_env.setdefault(port_var, str(free_port())))
            metrics = self.extra_env.pop(METRICS_PORTS[module], "")
            self.services[module] = ServiceProcess(
                module, {}, root / "logs" / f"{module}.log", port, int(metrics) if metrics else free_port()
            )

    def env(self, module: str | None = None) -> dict[str, str]:
        """The environment of a service process; with ``module``, that service's own NATS user and password.

        With ``module`` its /metrics port is 0 (a free one): another process of that service never
        collides with the first (``start_service`` gives the first the port chosen for it).
        """
        return {
            "NATS_URL": self.nats.address,
            "DATA_DIR": str(self.root / "data"),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            **self.identity.env(),
            **self.extra_env,
            **({METRICS_PORTS[module]: "0"} if module in METRICS_PORTS else {}),
            # Last: the stack's nats-server knows this service by these credentials only.
            **(self.nats.credentials_env(module) if module else {}),
        }

    @property
    def order(self) -> ServiceProcess:
        return self.services["order_svc"]

    @property
    def payment(self) -> ServiceProcess:
        return self.services["payment_svc"]

    @property
    def notification(self) -> ServiceProcess:
        return self.services["notification_svc"]

    def start_service(self, module: str) -> ServiceProcess:
        service = self.services[module]
        service.env = {**self.env(module), METRICS_PORTS[module]: str(service.metrics_port)}
        return service.start()

    def token(self, customer: str, roles: Sequence[str] = ()) -> str:
        """A bearer token for ``customer`` from this stack's identity provider."""
        return self.identity.token(customer, roles)

    def gateway_config(self, **settings: Any) -> GatewayConfig:
        """The gateway in front of this stack: order_svc upstream, trusting the provider order_svc trusts.

        ``settings`` are the rest of ``GatewayConfig`` (ports, page, rate limit, ...) or override those.
        Tracing follows the services' ``OTEL_*`` variables: Envoy exports where they export.
        """
        env = self.env()
        trusted = {
            "upstream_port": self.order.grpc_port,
            "issuer": env["OIDC_ISSUER"],
            "audience": env["OIDC_AUDIENCE"],
            "jwks_url": env.get("OIDC_JWKS_URL", ""),
            **tracing_settings(env),
        }
        return GatewayConfig(**{**trusted, **settings})

    async def start(self) -> Stack:
        self.identity.start()
        self.nats.start()
        for module in self.services:
            self.start_service(module)
        await asyncio.gather(*(s.wait_healthy() for s in self.services.values()))
        return self

    async def add_replica(self, module: str, port: int | None = None) -> ServiceProcess:
        """Start one more process of ``module`` (own gRPC port, same NATS and data folder) and wait for it.

        Its log is ``logs/<module>-<n>.log``, ``n`` counting this service's processes (the first is 1);
        its /metrics gets a free port of its own.
        """
        port = port or free_port()
        metrics_port = free_port()
        index = sum(r.module == module for r in self.replicas) + 2
        replica = ServiceProcess(
            module,
            {**self.env(module), SERVICES[module]: str(port), METRICS_PORTS[module]: str(metrics_port)},
            self.root / "logs" / f"{module}-{index}.log",
            port,
            metrics_port,
        ).start()
        self.replicas.append(replica)
        await replica.wait_healthy()
        return replica

    def processes_of(self, module: str) -> list[ServiceProcess]:
        """Every process of ``module``: the first, then its replicas in the order they were added."""
        return [self.services[module], *(r for r in self.replicas if r.module == module)]

    async def restart(self, service: ServiceProcess) -> None:
        """Start ``service`` again (after ``kill`` or ``terminate``) with its environment, and wait for it."""
        if service is self.services.get(service.module):
            self.start_service(service.module)
        else:
            service.start()
        await service.wait_healthy()

    def logs(self) -> str:
        """The tail of every service's log, for a failing test's report."""
        return "\n".join(
            f"--- {s.log_path.name} ---\n{s.log_tail()}" for s in [*self.services.values(), *self.replicas]
        )

    def stop(self) -> None:
        """SIGTERM every service at once, wait for each (SIGKILL a laggard), then stop NATS."""
        running = [s for s in [*self.replicas, *self.services.values()] if s.proc is not None]
        for service in running:
            service.resume()  # a paused process would never see its SIGTERM
            if service.proc is not None and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in running:
            service.terminate()
        self.nats.stop()
        self.identity.stop()


class EnvoyProcess:
    """Envoy on envoy.yaml rendered for ``config`` (see devstack.gateway), its log in ``workdir``."""

    def __init__(self, config: GatewayConfig, workdir: Path, log_level: str = "warning") -> None:
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / "envoy.yaml"
        self.log_path = workdir / "envoy.log"
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.config.url

    def start(self) -> EnvoyProcess:
        """Start Envoy in the repository root (``base-id`` = its port, unique per machine)."""
        write_config(self.config, self.config_path)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                orphan_safe(envoy_command(self.config_path, base_id=self.config.port, log_level=self.log_level)),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                **child_process_options(),
            )
        return self

    def _admin_get(self, path: str) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.config.admin_url}{path}", timeout=2) as reply:
            return str(reply.read().decode())

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until Envoy is LIVE and every order_svc endpoint passed the gRPC health check."""

        async def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}; see {self.log_path}")
            if (await asyncio.to_thread(self._admin_get, "/ready")).strip() != "LIVE":
                return False
            clusters = await asyncio.to_thread(self._admin_get, "/clusters")
            healthy = sum(
                line.startswith("order_svc::") and line.endswith("::health_flags::healthy")
                for line in clusters.splitlines()
            )
            return healthy >= len(self.config.order_svc_endpoints)

        try:
            await wait_for(ready, timeout=timeout, interval=0.05, what="envoy and a healthy order_svc")
        except (TimeoutError, RuntimeError) as error:
            raise type(error)(f"{error}\n--- {self.log_path} ---\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Envoy exits at once), SIGKILL if it does not; returns the exit code."""
        if self.proc is None:
            return None
        code = stop_process(self.proc, timeout)
        self.proc = None
        return code
