"""Each service's /metrics: the series move as orders flow, through an outage, a redelivery and a poison message."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import grpc
import nats
import pytest
from orders.v1 import orders_pb2
from prometheus_client.parser import text_string_to_metric_families

from devstack.saga import SagaClient, saga_client
from devstack.stack import ServiceProcess, Stack, wait_for

ORDER_CONSUMER = "order-svc-payments"
PAYMENT_CONSUMER = "payment-svc-orders"
NOTIFICATION_CONSUMER = "notification-svc-orders"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(service: ServiceProcess) -> Samples:
    text = await asyncio.to_thread(service.scrape)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name{labels}``; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(service: ServiceProcess, check: Callable[[Samples], bool], what: str, timeout: float = 30) -> Samples:
    """Scrape ``service`` until ``check`` holds (the last scrape), or fail naming ``what``."""

    async def probe() -> Samples | None:
        samples = await scrape(service)
        return samples if check(samples) else None

    found: Samples | None = await wait_for(probe, timeout=timeout, interval=0.2, what=what)
    assert found is not None
    return found


@pytest.fixture(scope="module")
async def observed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Stack, SagaClient]]:
    stack = Stack(Path(tmp_path_factory.mktemp("metrics")))
    try:
        await stack.start()
        async with saga_client(stack) as saga:
            yield stack, saga
    finally:
        stack.stop()


def listening_addresses(port: int) -> set[str] | None:
    """The local addresses TCP sockets listen on ``port`` with (Linux /proc/net/tcp, tcp6); None elsewhere."""
    found: set[str] = set()
    tables = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        tables += 1
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found if tables else None


async def test_each_service_serves_its_metrics_on_its_own_loopback_port(observed: tuple[Stack, SagaClient]) -> None:
    stack, _ = observed
    ports = {service.metrics_port for service in stack.services.values()}
    assert len(ports) == 3
    for service in stack.services.values():
        samples = await scrape(service)
        assert value(samples, "process_cpu_seconds_total") > 0, service.module
        assert value(samples, "process_resident_memory_bytes") > 0, service.module
        assert service.metrics_port is not None
        listening = listening_addresses(service.metrics_port)
        loopback = socket.inet_aton("127.0.0.1")[::-1].hex().upper()  # /proc/net/tcp's byte order
        assert listening in ({loopback}, None), f"{service.module} listens on {listening}"


async def test_the_series_move_as_orders_flow(observed: tuple[Stack, SagaClient]) -> None:
    stack, saga = observed
    before = {
        "order": await scrape(stack.order),
        "payment": await scrape(stack.payment),
        "notification": await scrape(stack.notification),
    }

    orders = await asyncio.gather(*(saga.create("pm_card_visa") for _ in range(3)))
    orders += await asyncio.gather(*(saga.create("pm_card_declined") for _ in range(2)))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await saga.orders.CreateOrder(orders_pb2.CreateOrderRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ids = [o.order_id for o in orders]
    await saga.wait_final(ids)
    await saga.wait_notified(ids)
    watched = [o async for o in saga.orders.WatchOrder(orders_pb2.WatchOrderRequest(order_id=ids[0]), timeout=10)]
    assert watched[-1].state == orders_pb2.ORDER_STATE_PAID

    def grew(name: str, by: float, samples: Samples, earlier: Samples, **labels: str) -> bool:
        return value(samples, name, **labels) - value(earlier, name, **labels) == by

    create = {"grpc_service": "orders.v1.OrderService", "grpc_method": "CreateOrder", "grpc_type": "unary"}
    watch = {"grpc_service": "orders.v1.OrderService", "grpc_method": "WatchOrder", "grpc_type": "server_stream"}

    def order_side(s: Samples) -> bool:
        b = before["order"]
        return (
            grew("orders_total", 5, s, b, state="CREATED")
            and grew("orders_total", 3, s, b, state="PAID")
            and grew("orders_total", 2, s, b, state="CANCELLED")
            and grew("grpc_server_handled_total", 5, s, b, **create, grpc_code="OK")
            and grew("grpc_server_handled_total", 1, s, b, **create, grpc_code="INVALID_ARGUMENT")
            and grew("grpc_server_handling_seconds_count", 6, s, b, **create)
            and grew("grpc_server_handled_total", 1, s, b, **watch, grpc_code="OK")
            and grew("outbox_events_published_total", 5, s, b, event_type="orders.v1.OrderCreated")
            and grew("outbox_events_published_total", 10, s, b, event_type="orders.v1.OrderStateChanged")
            and grew("consumer_events_total", 5, s, b, consumer=ORDER_CONSUMER, outcome="acked")
            and value(s, "outbox_pending_events") == 0
            and value(s, "outbox_oldest_event_age_seconds") == 0
        )

    def payment_side(s: Samples) -> bool:
        b = before["payment"]
        return (
            grew("consumer_events_total", 5, s, b, consumer=PAYMENT_CONSUMER, outcome="acked")
            and grew("outbox_events_published_total", 3, s, b, event_type="payments.v1.PaymentSuccessful")
            and grew("outbox_events_published_total", 2, s, b, event_type="payments.v1.PaymentFailed")
            and value(s, "consumer_pending_messages", consumer=PAYMENT_CONSUMER) == 0
        )

    def notification_side(s: Samples) -> bool:
        b = before["notification"]
        return grew("consumer_events_total", 10, s, b, consumer=NOTIFICATION_CONSUMER, outcome="acked")

    await until(stack.order, order_side, "order_svc's series to count the five orders")
    await until(stack.payment, payment_side, "payment_svc's series to count the five charges")
    await until(stack.notification, notification_side, "notification_svc's series to count ten changes")
    latency = await scrape(stack.order)
    buckets = [
        (dict(labels), v)
        for (name, labels), v in latency.items()
        if name == "grpc_server_handling_seconds_bucket" and dict(labels).get("grpc_method") == "CreateOrder"
    ]
    assert any(labels["le"] == "+Inf" and v >= 6 for labels, v in buckets)


async def test_the_outbox_gauges_show_events_waiting_while_nats_is_down(observed: tuple[Stack, SagaClient]) -> None:
    stack, saga = observed
    stack.nats.stop()
    try:
        orders = await asyncio.gather(saga.create("pm_card_visa"), saga.create("pm_card_visa"))

        def waiting(s: Samples) -> bool:
            return value(s, "outbox_pending_events") >= 4 and value(s, "outbox_oldest_event_age_seconds") > 0

        await until(stack.order, waiting, "the outbox gauges to show 4 events waiting")

        def older(s: Samples) -> bool:
            return value(s, "outbox_oldest_event_age_seconds") >= 1.0

        await until(stack.order, older, "the oldest event's age to grow")
    finally:
        stack.nats.start()
    await saga.wait_final([o.order_id for o in orders], timeout=90)

    def drained(s: Samples) -> bool:
        return value(s, "outbox_pending_events") == 0 and value(s, "outbox_oldest_event_age_seconds") == 0

    await until(stack.order, drained, "the outbox to drain")


async def test_a_failed_attempt_and_its_redelivery_are_counted(observed: tuple[Stack, SagaClient]) -> None:
    stack, saga = observed
    before = await scrape(stack.payment)
    lock = sqlite3.connect(stack.root / "data" / "payments.sqlite3", isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN IMMEDIATE")  # payment_svc's next write fails after its busy timeout

        def nakked(s: Samples) -> bool:
            labels = {"consumer": PAYMENT_CONSUMER, "outcome": "nakked"}
            return value(s, "consumer_events_total", **labels) > value(before, "consumer_events_total", **labels)

        order = await saga.create("pm_card_visa")
        await until(stack.payment, nakked, "the failed attempt to be counted")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await saga.wait_final([order.order_id])

    def redelivered(s: Samples) -> bool:
        labels = {"consumer": PAYMENT_CONSUMER}
        return value(s, "consumer_redeliveries_total", **labels) > value(
            before, "consumer_redeliveries_total", **labels
        )

    await until(stack.payment, redelivered, "the redelivery to be counted")


async def test_the_dead_letter_depth_rises_when_a_poison_message_arrives(observed: tuple[Stack, SagaClient]) -> None:
    stack, _ = observed
    labels = {"consumer": PAYMENT_CONSUMER}
    before = await until(
        stack.payment,
        lambda s: ("consumer_dead_letters", frozenset(labels.items())) in s,
        "payment_svc to report its dead letters",
    )
    nc = await nats.connect(stack.nats.url)  # the admin: may publish anything anywhere
    try:
        await nc.jetstream().publish("orders.created", b"\xff\x00 not a protobuf", headers={"Nats-Msg-Id": "poison-1"})
    finally:
        await nc.close()

    def parked(s: Samples) -> bool:
        dead = {**labels, "outcome": "dead_lettered"}
        return (
            value(s, "consumer_dead_letters", **labels) == value(before, "consumer_dead_letters", **labels) + 1
            and value(s, "consumer_events_total", **dead) == value(before, "consumer_events_total", **dead) + 1
        )

    await until(stack.payment, parked, "the dead-letter depth to rise by one")


@pytest.fixture
async def slow_consumer(tmp_path: Path) -> AsyncIterator[tuple[Stack, SagaClient]]:
    """payment_svc handles one message at a time, 400 ms each; notification_svc serves no metrics."""
    env: Mapping[str, str] = {
        "PAYMENT_SVC_FETCH_BATCH": "1",
        "PAYMENT_SVC_LATENCY_MS": "400",
        "NOTIFICATION_SVC_METRICS_PORT": "-1",
    }
    stack = Stack(tmp_path, env=env)
    try:
        await stack.start()
        async with saga_client(stack) as saga:
            yield stack, saga
    finally:
        stack.stop()


async def test_consumer_pending_counts_come_from_jetstream_and_metrics_can_be_off(
    slow_consumer: tuple[Stack, SagaClient],
) -> None:
    stack, saga = slow_consumer
    assert stack.notification.metrics_port == -1
    with pytest.raises(LookupError):
        _ = stack.notification.metrics_url
    orders = await asyncio.gather(*(saga.create("pm_card_visa") for _ in range(12)))
    labels = {"consumer": PAYMENT_CONSUMER}

    def backlog(s: Samples) -> bool:
        return (
            value(s, "consumer_pending_messages", **labels) >= 1
            and value(s, "consumer_ack_pending_messages", **labels) >= 1
        )

    await until(stack.payment, backlog, "payment_svc to report its backlog", timeout=20)
    await saga.wait_final([o.order_id for o in orders])

    def idle(s: Samples) -> bool:
        return (
            value(s, "consumer_pending_messages", **labels) == 0
            and value(s, "consumer_ack_pending_messages", **labels) == 0
        )

    await until(stack.payment, idle, "payment_svc's backlog to be gone")
    await saga.wait_notified([o.order_id for o in orders])  # notification_svc works without /metrics
