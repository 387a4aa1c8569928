"""Fixtures of the e2e tier: the identity provider, nats-server, the three services and Envoy, once per session.

Every API call through the gateway needs a bearer token (Envoy's jwt_authn checks it, order_svc again):

- ``token(customer, roles=())``: a real token from the stack's development provider (cached);
- ``customer``: a fresh customer id for each test, so tests share no orders and no rate-limit bucket;
- ``http``: an httpx client on the gateway signed in as ``customer``;
- ``http_as(customer, roles=())``: another client signed in as anyone (``None``: no token at all);
- ``anonymous``: a client with no token (what the page and ``/config.json`` need).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from devstack.gateway import page_or_placeholder
from devstack.stack import EnvoyProcess, Stack, free_port

# The mock payment takes this long, so a watcher sees CREATED before PAID and a cancel wins the race.
PAYMENT_LATENCY_MS = 2000


@dataclass
class System:
    """The running system: the stack of processes and the gateway in front of it."""

    stack: Stack
    gateway: EnvoyProcess
    _tokens: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.gateway.url

    def token(self, customer: str, roles: Sequence[str] = ()) -> str:
        """A bearer token for ``customer`` from the stack's identity provider (one sign-in per customer and roles)."""
        key = (customer, tuple(roles))
        with self._lock:
            if key not in self._tokens:
                self._tokens[key] = self.stack.token(customer, roles)
            return self._tokens[key]

    def bearer(self, customer: str, roles: Sequence[str] = ()) -> dict[str, str]:
        """The Authorization header that signs a request in as ``customer``."""
        return {"Authorization": f"Bearer {self.token(customer, roles)}"}


class TokenFor(Protocol):
    def __call__(self, customer: str, roles: Sequence[str] = ()) -> str: ...


class HttpAs(Protocol):
    def __call__(self, customer: str | None, roles: Sequence[str] = ()) -> httpx.AsyncClient: ...


@pytest.fixture(scope="session")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    root = Path(tmp_path_factory.mktemp("e2e"))
    stack = Stack(root, env={"PAYMENT_SVC_LATENCY_MS": str(PAYMENT_LATENCY_MS)})
    gateway: EnvoyProcess | None = None
    try:
        await stack.start()
        config = stack.gateway_config(
            port=free_port(), admin_port=free_port(), page=page_or_placeholder(root / "envoy")
        )
        gateway = EnvoyProcess(config, root / "envoy").start()
        await gateway.wait_ready()
        yield System(stack, gateway)
    finally:
        if gateway is not None:
            gateway.terminate()
        stack.stop()


@pytest.fixture
def token(system: System) -> TokenFor:
    """``token(customer, roles=())``: a real bearer token from the stack's identity provider."""
    return system.token


@pytest.fixture
def customer() -> str:
    """A customer of this test alone."""
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def http_as(system: System) -> AsyncIterator[HttpAs]:
    """``http_as(customer, roles=())``: a client on the gateway signed in as ``customer`` (None: no token)."""
    clients: list[httpx.AsyncClient] = []

    def signed_in(customer: str | None, roles: Sequence[str] = ()) -> httpx.AsyncClient:
        headers = {} if customer is None else system.bearer(customer, roles)
        client = httpx.AsyncClient(base_url=system.url, timeout=15, trust_env=False, headers=headers)
        clients.append(client)
        return client

    try:
        yield signed_in
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
def http(http_as: HttpAs, customer: str) -> httpx.AsyncClient:
    """A client on the gateway signed in as this test's ``customer``."""
    return http_as(customer)


@pytest.fixture
def anonymous(http_as: HttpAs) -> httpx.AsyncClient:
    """A client on the gateway without a token."""
    return http_as(None)
