"""Test fixtures shared by every suite: real nats-server and service processes on free ports, and waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.binaries import binary
from devstack.gateway import GatewayConfig, envoy_command, tracing_settings, write_config
from devstack.identity import OidcProvider
from devstack.natsauth import ADMIN, BOOTSTRAP, Credentials, bootstrap, render, write_private
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
    "EnvoyProcess",
    "NatsServer",
    "ServiceProcess",
    "Stack",
    "child_process_options",
    "free_port",
    "orphan_safe",
    "wait_for",
    "wait_for_port",
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
    """

    def __init__(self, store_dir: Path, port: int | None = None, *, auth: bool = True, streams: bool = True) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.credentials = Credentials.generate() if auth else None
        self.declares_streams = streams
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

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
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_auth()
        self._log = (self.store_dir / "nats-server.log").open("ab")
        self.proc = subprocess.Popen(
            orphan_safe(
                [
                    binary("nats-server"),
                    *config,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.store_dir),
                ]
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            **child_process_options(),
        )
        wait_for_port(self.port, timeout=20, proc=self.proc)
        if self.declares_streams:
            self.declare_streams()
        return self

    def declare_streams(self) -> None:
        """Declare the streams as the ``bootstrap`` user (what ``python -m devstack.natsauth bootstrap`` does)."""
        user = BOOTSTRAP if self.credentials is not None else None
        password = self.credentials.password(BOOTSTRAP) if self.credentials is not None else None
        # A thread of its own: start() is called from inside a running event loop (tests, `make up`).
        with ThreadPoolExecutor(1, thread_name_prefix="nats-bootstrap") as pool:
            pool.submit(lambda: asyncio.run(bootstrap(self.address, user, password, timeout=20))).result()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


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
    """

    def __init__(
        self,
        root: Path,
        env: Mapping[str, str] | None = None,
        nats_port: int | None = None,
        oidc_port: int | None = None,
    ) -> None:
        self.root = root
        self.identity = OidcProvider(root / "identity", oidc_port)
        self.nats = NatsServer(root / "nats", nats_port)
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

    async def add_replica(self, module: str) -> ServiceProcess:
        """Start one more process of ``module`` (own gRPC port, same NATS and data folder) and wait for it."""
        port = free_port()
        metrics_port = free_port()
        index = len(self.replicas) + 2
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

    def logs(self) -> str:
        """The tail of every service's log, for a failing test's report."""
        return "\n".join(
            f"--- {s.log_path.name} ---\n{s.log_tail()}" for s in [*self.services.values(), *self.replicas]
        )

    def stop(self) -> None:
        """SIGTERM every service at once, wait for each (SIGKILL a laggard), then stop NATS."""
        running = [s for s in [*self.replicas, *self.services.values()] if s.proc is not None]
        for service in running:
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
        """Until Envoy is LIVE and order_svc's endpoint passed the gRPC health check."""

        async def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}; see {self.log_path}")
            if (await asyncio.to_thread(self._admin_get, "/ready")).strip() != "LIVE":
                return False
            clusters = await asyncio.to_thread(self._admin_get, "/clusters")
            return any(
                line.startswith("order_svc::") and line.endswith("::health_flags::healthy")
                for line in clusters.splitlines()
            )

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
