"""What is measured: the saga end to end (gRPC, HTTP), and the raw limits (gRPC echo, JetStream, bare pipeline)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from orders.v1 import events_pb2 as order_events
from orders.v1 import orders_pb2, orders_pb2_grpc
from payments.v1 import events_pb2 as payment_events

from bench import bare
from bench.echo import ECHO_METHOD
from bench.http1 import HttpPool
from bench.loop import Operation, closed_loop
from bench.procs import CpuMeter
from bench.pull import WaveConsumer
from bench.stats import RunResult
from bench.tracker import AckTracker

__all__ = [
    "Measure",
    "Scenario",
    "bare_tracker",
    "echo_ops",
    "echo_order",
    "grpc_creator",
    "http_creator",
    "jetstream_ops",
    "order_request",
    "payment_tracker",
    "run_interleaved",
    "run_names",
    "saga_ops",
]

FINAL = "final"
NOTIFIED = "notified"
Progress = Callable[[str], None]


def order_request(customer_id: str) -> orders_pb2.CreateOrderRequest:
    """The order every run places: one line item, a card that always succeeds."""
    return orders_pb2.CreateOrderRequest(
        order=orders_pb2.Order(
            customer_id=customer_id,
            payment_method="pm_card_visa",
            line_items=[
                orders_pb2.LineItem(
                    sku="SKU-1", quantity=2, unit_price={"currency_code": "USD", "units": 12, "nanos": 500_000_000}
                )
            ],
        )
    )


def order_json(customer_id: str) -> bytes:
    """The same order as the gateway's HTTP/JSON body."""
    return json.dumps(
        {
            "customerId": customer_id,
            "lineItems": [
                {"sku": "SKU-1", "quantity": 2, "unitPrice": {"currencyCode": "USD", "units": "12", "nanos": 500000000}}
            ],
            "paymentMethod": "pm_card_visa",
        }
    ).encode()


def echo_order() -> orders_pb2.Order:
    """An Order as CreateOrder returns it (every output field set): the echo's message."""
    order = orders_pb2.Order()
    order.CopyFrom(order_request("bench-echo").order)
    order.order_id = "2f0c8e1e-7d1a-4a57-9b6e-0f7e1c2d3a4b"
    order.name = f"orders/{order.order_id}"
    order.total.currency_code, order.total.units, order.total.nanos = "USD", 25, 0
    order.state = orders_pb2.ORDER_STATE_CREATED
    order.create_time.GetCurrentTime()
    order.update_time.GetCurrentTime()
    return order


@dataclass
class Measure:
    """How every scenario runs: order count, in-flight levels, time budget per run, warm-up size."""

    count: int
    levels: Sequence[int]
    budget_s: float
    warmup: int
    op_timeout: float
    progress: Progress = field(default=lambda _line: None)


@dataclass
class Scenario:
    """One thing measured at every level: its operation, and whose CPU time it is charged."""

    section: str
    name: str
    label: str
    make_op: Callable[[str], Operation]
    meter: CpuMeter
    system: tuple[str, ...]


async def run_interleaved(measure: Measure, scenarios: Sequence[Scenario]) -> dict[str, dict[str, list[RunResult]]]:
    """Warm every scenario up, then for each level run every scenario back to back.

    Back to back, a burst of load from elsewhere on the machine hits the system and its raw
    limits alike, so their ratios stay meaningful on a noisy box.
    """
    if measure.warmup:
        for scenario in scenarios:
            await closed_loop(
                scenario.make_op("warmup"), count=measure.warmup, in_flight=min(16, measure.warmup), budget_s=30
            )
    results: dict[str, dict[str, list[RunResult]]] = {}
    for level in measure.levels:
        for scenario in scenarios:
            scenario.meter.start()
            result = await closed_loop(
                scenario.make_op(f"l{level}"), count=measure.count, in_flight=level, budget_s=measure.budget_s
            )
            scenario.meter.stop()
            result.extra["cpu_ms_per_op"] = scenario.meter.ms_per_op(result.completed, scenario.system)
            measure.progress(
                f"{scenario.label:<24} in_flight={level:<4} {result.completed}/{measure.count} in "
                f"{result.elapsed_s:.1f}s = {result.per_second or 0:.0f}/s  failed={result.failed}"
            )
            results.setdefault(scenario.section, {}).setdefault(scenario.name, []).append(result)
    return results


class Tracker(Protocol):
    """When each order reached each milestone."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def reset(self) -> None: ...

    async def wait(self, order_id: str, milestone: str, timeout: float) -> float: ...


class SagaTracker:
    """Final = order_svc acked the payment event; notified = notification_svc acked the order's final change."""

    def __init__(self, nc: NatsClient) -> None:
        def paid_order(msg: Msg) -> str:
            return str(payment_events.PaymentSuccessful.FromString(msg.data).order_id)  # same field in PaymentFailed

        def final_change(msg: Msg) -> str:
            change = order_events.OrderStateChanged.FromString(msg.data)
            return change.order_id if change.state != orders_pb2.ORDER_STATE_CREATED else ""

        self._final = AckTracker(
            nc,
            stream="PAYMENTS",
            subject="payments.>",
            milestones={"order-svc-payments": FINAL},
            order_id_of=paid_order,
        )
        self._notified = AckTracker(
            nc,
            stream="ORDERS",
            subject="orders.changed.>",
            milestones={"notification-svc-orders": NOTIFIED},
            order_id_of=final_change,
        )

    async def start(self) -> None:
        await self._final.start()
        await self._notified.start()

    async def stop(self) -> None:
        await self._final.stop()
        await self._notified.stop()

    def reset(self) -> None:
        self._final.reset()
        self._notified.reset()

    async def wait(self, order_id: str, milestone: str, timeout: float) -> float:
        tracker = self._notified if milestone == NOTIFIED else self._final
        return await tracker.wait(order_id, milestone, timeout)


def payment_tracker(nc: NatsClient) -> SagaTracker:
    """The saga's milestones, seen from NATS alone."""
    return SagaTracker(nc)


def bare_tracker(nc: NatsClient) -> AckTracker:
    """The same milestones in the bare pipeline."""
    return AckTracker(
        nc,
        stream=bare.STREAM,
        subject=bare.PAID_SUBJECT,
        milestones={bare.CONSUMERS["order"][0]: FINAL, bare.CONSUMERS["notification"][0]: NOTIFIED},
        order_id_of=lambda msg: msg.data.split(b"|", 1)[0].decode(),
    )


CreateFn = Callable[[str], Awaitable[str]]


def saga_ops(measure: Measure, create_for: Callable[[str], CreateFn], tracker: Tracker) -> Callable[[str], Operation]:
    """Orders placed by ``create_for(run)(i)`` (returns the order id), each followed until notified."""

    def make_op(run: str) -> Operation:
        tracker.reset()
        create = create_for(run)

        async def op(index: int) -> dict[str, float]:
            start = time.perf_counter()
            order_id = await create(f"{run}-{index}")
            created = time.perf_counter()
            final = await tracker.wait(order_id, FINAL, measure.op_timeout)
            notified = await tracker.wait(order_id, NOTIFIED, measure.op_timeout)
            return {
                "create_order": created - start,
                "placed_to_final": final - start,
                "placed_to_notification_stored": notified - start,
            }

        return op

    return make_op


TokenFor = Callable[[str], str]


def grpc_creator(
    channel: grpc.aio.Channel, tag: str, timeout: float, token_for: TokenFor | None = None
) -> Callable[[str], CreateFn]:
    """CreateOrder over gRPC; every run's orders belong to their own customer, signed in with its token.

    ``token_for(customer)`` must answer at once (tokens fetched before the runs); None: no token
    (the bare pipeline checks none).
    """
    stub = orders_pb2_grpc.OrderServiceStub(channel)

    def create_for(run: str) -> CreateFn:
        customer = f"{tag}-{run}"
        request = order_request(customer)
        metadata = (("authorization", f"Bearer {token_for(customer)}"),) if token_for is not None else None

        async def create(_key: str) -> str:
            order = await stub.CreateOrder(request, metadata=metadata, timeout=timeout)
            return str(order.order_id)

        return create

    return create_for


def http_creator(
    pool: HttpPool, tag: str, timeout: float, token_for: TokenFor | None = None
) -> Callable[[str], CreateFn]:
    """POST /v1/orders through the gateway, signed in as the run's customer (None: no token, auth-off baseline)."""

    def create_for(run: str) -> CreateFn:
        customer = f"{tag}-{run}"
        body = order_json(customer)
        headers = f"Authorization: Bearer {token_for(customer)}\r\n".encode() if token_for is not None else b""

        async def create(_key: str) -> str:
            reply = json.loads(await pool.post_json("/v1/orders", body, timeout=timeout, headers=headers))
            return str(reply["orderId"])

        return create

    return create_for


def run_names(measure: Measure) -> list[str]:
    """The name of every run ``run_interleaved`` makes (its customers are named after them)."""
    return ["warmup", *(f"l{level}" for level in measure.levels)]


async def echo_ops(measure: Measure, target: str, stack: contextlib.AsyncExitStack) -> Callable[[str], Operation]:
    """A unary grpc.aio call carrying an Order both ways, against ``python -m bench.echo``."""
    message = echo_order()
    channel = await stack.enter_async_context(grpc.aio.insecure_channel(target))
    call = channel.unary_unary(
        ECHO_METHOD,
        request_serializer=orders_pb2.Order.SerializeToString,
        response_deserializer=orders_pb2.Order.FromString,
    )

    def make_op(_run: str) -> Operation:
        async def op(_index: int) -> dict[str, float]:
            start = time.perf_counter()
            await call(message, timeout=measure.op_timeout)
            return {"rpc": time.perf_counter() - start}

        return op

    return make_op


RT_STREAM = "BENCH_RT"
RT_SUBJECT = "bench.rt"
RT_DURABLE = "bench-rt"


async def jetstream_ops(
    measure: Measure, nats_url: str, stack: contextlib.AsyncExitStack
) -> Callable[[str], Operation]:
    """Publish (waiting for the PubAck, with Nats-Msg-Id) → pull-consume → ack, with order-sized payloads."""
    publisher = await nats.connect(nats_url, name="bench-rt-publisher")
    stack.push_async_callback(publisher.close)
    subscriber = await nats.connect(nats_url, name="bench-rt-consumer")
    stack.push_async_callback(subscriber.close)
    js = publisher.jetstream()
    with contextlib.suppress(Exception):
        await js.delete_stream(RT_STREAM)
    await js.add_stream(
        api.StreamConfig(name=RT_STREAM, subjects=[RT_SUBJECT], storage=api.StorageType.FILE, duplicate_window=120.0)
    )

    async def delete_stream() -> None:
        with contextlib.suppress(Exception):
            await js.delete_stream(RT_STREAM)

    stack.push_async_callback(delete_stream)
    await js.add_consumer(
        RT_STREAM,
        api.ConsumerConfig(
            durable_name=RT_DURABLE, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=30.0, max_ack_pending=20_000
        ),
    )
    waiters: dict[bytes, asyncio.Future[float]] = {}

    async def on_wave(wave: list[Msg]) -> None:
        for msg in wave:
            await msg.ack()
        now = time.perf_counter()
        for msg in wave:
            future = waiters.pop(msg.data.split(b"|", 1)[0], None)
            if future is not None and not future.done():
                future.set_result(now)

    consumer = WaveConsumer(subscriber, RT_STREAM, RT_DURABLE, on_wave)
    await consumer.start()
    stack.push_async_callback(consumer.stop)
    padding = echo_order().SerializeToString()
    loop = asyncio.get_running_loop()

    def make_op(run: str) -> Operation:
        async def op(index: int) -> dict[str, float]:
            key = f"{run}-{index}".encode()
            future: asyncio.Future[float] = loop.create_future()
            waiters[key] = future
            start = time.perf_counter()
            await js.publish(RT_SUBJECT, key + b"|" + padding, headers={"Nats-Msg-Id": key.decode()})
            published = time.perf_counter()
            consumed = await asyncio.wait_for(future, measure.op_timeout)
            return {"publish": published - start, "round_trip": consumed - start}

        return op

    return make_op
