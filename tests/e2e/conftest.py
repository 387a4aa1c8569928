"""Fixtures of the e2e tier: nats-server, the three services and Envoy on free ports, once per session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.gateway import GatewayConfig, page_or_placeholder
from devstack.stack import EnvoyProcess, Stack, free_port

# The mock payment takes this long, so a watcher sees CREATED before PAID and a cancel wins the race.
PAYMENT_LATENCY_MS = 2000


@dataclass
class System:
    """The running system: the stack of processes and the gateway in front of it."""

    stack: Stack
    gateway: EnvoyProcess

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="session")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    root = Path(tmp_path_factory.mktemp("e2e"))
    stack = Stack(root, env={"PAYMENT_SVC_LATENCY_MS": str(PAYMENT_LATENCY_MS)})
    gateway: EnvoyProcess | None = None
    try:
        await stack.start()
        config = GatewayConfig(
            port=free_port(),
            admin_port=free_port(),
            upstream_port=stack.order.grpc_port,
            page=page_or_placeholder(root / "envoy"),
        )
        gateway = EnvoyProcess(config, root / "envoy").start()
        await gateway.wait_ready()
        yield System(stack, gateway)
    finally:
        if gateway is not None:
            gateway.terminate()
        stack.stop()


@pytest.fixture
async def http(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.url, timeout=15, trust_env=False) as client:
        yield client
