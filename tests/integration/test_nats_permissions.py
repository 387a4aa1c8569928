"""Least privilege on NATS: each service's user may do its own work only, and a refusal is visible and logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from orders.v1 import orders_pb2
from payments.v1 import events_pb2 as payment_events

from chassis.bus import inbox_prefix
from devstack.natsauth import BOOTSTRAP, EX_NOPERM
from devstack.saga import SagaClient
from devstack.stack import SERVICES, ServiceProcess, Stack, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLI_DEADLINE_SECONDS = 60.0


@dataclass
class Login:
    """A connection as one user, with what the server refused (its reasons reach the error callback)."""

    nc: NatsClient
    refusals: list[str] = field(default_factory=list)

    async def refused(self, reason: str) -> str:
        """Wait until the server's refusal containing ``reason`` (lower case, as nats-py reports it) arrives."""

        async def seen() -> str:
            return next((r for r in self.refusals if reason in r), "")

        return await wait_for(seen, timeout=10, what=f"the server to refuse: {reason}")


@contextlib.asynccontextmanager
async def login_as(stack: Stack, service: str) -> AsyncIterator[Login]:
    """A client with ``service``'s credentials, connected as the service itself does (its own inbox prefix)."""
    refusals: list[str] = []

    async def on_error(error: Exception) -> None:
        refusals.append(str(error))

    credentials = stack.nats.credentials_env(service)
    nc = await nats.connect(
        stack.nats.address,
        user=credentials["NATS_USER"],
        password=credentials["NATS_PASSWORD"],
        inbox_prefix=inbox_prefix(service),
        error_cb=on_error,
        max_reconnect_attempts=1,
    )
    try:
        yield Login(nc, refusals)
    finally:
        await nc.close()


@pytest.fixture
async def as_payment_svc(stack: Stack) -> AsyncIterator[Login]:
    async with login_as(stack, "payment_svc") as login:
        yield login


async def _admin_js(stack: Stack) -> tuple[NatsClient, nats.js.JetStreamContext]:
    nc = await nats.connect(stack.nats.url)
    return nc, nc.jetstream()


async def test_payment_svc_may_not_publish_an_order_event(stack: Stack, as_payment_svc: Login) -> None:
    admin, js = await _admin_js(stack)
    try:
        before = (await js.stream_info("ORDERS")).state.messages
        with pytest.raises(nats.errors.TimeoutError):  # a refused publish is never acknowledged
            await as_payment_svc.nc.jetstream().publish("orders.created", b"forged", timeout=1)
        await as_payment_svc.refused('permissions violation for publish to "orders.created"')
        assert (await js.stream_info("ORDERS")).state.messages == before, "nothing reached the stream"
    finally:
        await admin.close()


async def test_payment_svc_may_not_read_order_svcs_consumer_nor_its_deliveries(
    stack: Stack, as_payment_svc: Login
) -> None:
    admin, js = await _admin_js(stack)
    try:  # order_svc made its durable at start; payment_svc may neither look at it nor pull from it
        await wait_for(lambda: js.consumer_info("PAYMENTS", "order-svc-payments"), timeout=30, what="the durable")
    finally:
        await admin.close()
    theirs = as_payment_svc.nc.jetstream()
    with pytest.raises(nats.errors.TimeoutError):
        await theirs.consumer_info("PAYMENTS", "order-svc-payments", timeout=1)
    await as_payment_svc.refused(
        'permissions violation for publish to "$js.api.consumer.info.payments.order-svc-payments"'
    )
    pull = await theirs.pull_subscribe_bind("order-svc-payments", stream="PAYMENTS")
    with pytest.raises(nats.errors.TimeoutError):
        await pull.fetch(1, timeout=1)
    await as_payment_svc.refused(
        'permissions violation for publish to "$js.api.consumer.msg.next.payments.order-svc-payments"'
    )
    # Nor may it listen where order_svc's pulled messages arrive, or to the payment events themselves.
    for subject in ("_INBOX.>", f"{inbox_prefix('order_svc')}.>", "payments.>"):
        await as_payment_svc.nc.subscribe(subject)
        await as_payment_svc.refused(f'permissions violation for subscription to "{subject.lower()}"')


async def test_a_service_that_tries_to_declare_streams_logs_the_refusal_and_still_consumes(stack: Stack) -> None:
    port = free_port()
    replica = ServiceProcess(
        "payment_svc",
        {**stack.env("payment_svc"), SERVICES["payment_svc"]: str(port), "NATS_DECLARE_STREAMS": "true"},
        stack.root / "logs" / "payment_svc-declaring.log",
        port,
    ).start()
    try:
        await replica.wait_healthy()

        async def logged() -> list[dict[str, object]]:
            lines = [json.loads(line) for line in replica.log_path.read_text().splitlines() if line.startswith("{")]
            events = {str(line["event"]) for line in lines}
            return lines if {"nats error", "cannot declare streams", "consuming"} <= events else []

        lines = await wait_for(logged, timeout=30, interval=0.1, what="the refusal in the service's log")
        (error,) = [line for line in lines if line["event"] == "nats error"]
        assert 'permissions violation for publish to "$js.api.stream.create.payments"' in str(error["error"])
        assert error["level"] == "warning"
        assert stack.nats.credentials is not None
        assert stack.nats.credentials.password("payment_svc") not in replica.log_path.read_text()
    finally:
        replica.terminate()


async def test_the_saga_and_watch_run_on_least_privilege_users_without_a_single_refusal(
    stack: Stack, saga: SagaClient
) -> None:
    paid = await saga.create("pm_card_visa", customer_id="least-privilege")
    declined = await saga.create("pm_card_declined", customer_id="least-privilege")
    watch = saga.orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=paid.order_id))
    async for change in watch:  # WatchOrder follows orders.changed.<id> with order_svc's own user
        if change.state == orders_pb2.ORDER_STATE_PAID:
            break
    final = await saga.wait_final([paid.order_id, declined.order_id])
    assert [o.state for o in final] == [orders_pb2.ORDER_STATE_PAID, orders_pb2.ORDER_STATE_CANCELLED]
    await saga.wait_notified([paid.order_id, declined.order_id])
    for service in stack.services.values():
        log = service.log_path.read_text()
        assert '"nats connected"' in log
        assert f'"user": "{service.module}"' in log
        assert "permissions violation" not in log, service.module


async def _natsauth(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devstack.natsauth",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_DEADLINE_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_bootstrap_command_declares_the_streams_as_bootstrap_and_a_service_may_not(stack: Stack) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")} | {"NATS_URL": stack.nats.address}
    code, out, err = await _natsauth(base | stack.nats.credentials_env(BOOTSTRAP), "bootstrap", "--timeout", "10")
    assert (code, out.strip()) == (0, f"streams declared on {stack.nats.address}: ORDERS, PAYMENTS, DEAD_LETTERS"), err
    code, out, err = await _natsauth(base | stack.nats.credentials_env("payment_svc"), "bootstrap", "--timeout", "10")
    assert code == EX_NOPERM, (out, err)
    assert err.strip().startswith("user 'payment_svc' may not declare the streams: ")
    assert "permissions violation for publish to" in err
    assert stack.nats.credentials is not None
    assert stack.nats.credentials.password("payment_svc") not in out + err


async def test_order_svc_may_not_forge_a_payment_event(stack: Stack) -> None:
    event = payment_events.PaymentSuccessful(event_id="forged", order_id="o-forged", payment_id="p-forged")
    async with login_as(stack, "order_svc") as login:
        with pytest.raises(nats.errors.TimeoutError):
            await login.nc.jetstream().publish("payments.succeeded", event.SerializeToString(), timeout=1)
        await login.refused('permissions violation for publish to "payments.succeeded"')
