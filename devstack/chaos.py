"""``make chaos``: orders at a steady rate through the gateway while NATS nodes and replicas fail; one JSON verdict."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from nats.aio.client import Client as NatsClient
from notifications.v1 import notifications_pb2, notifications_pb2_grpc
from orders.v1 import events_pb2 as order_events
from orders.v1 import orders_pb2, orders_pb2_grpc
from payments.v1 import events_pb2 as payment_events
from payments.v1 import payments_pb2, payments_pb2_grpc

from chassis.delivery import DEAD_LETTER_STREAM
from devstack.binaries import binary
from devstack.gateway import page_or_placeholder
from devstack.saga import ADMIN_ROLE, bearer, order_request
from devstack.stack import SERVICES, EnvoyProcess, NatsCluster, ServiceProcess, Stack, free_port, wait_for

__all__ = ["ChaosOptions", "Fault", "main", "run"]

T = TypeVar("T")

STATE = orders_pb2.OrderState
STEP = orders_pb2.OrderStepKind
PAY = payments_pb2.PaymentStatus
KIND = notifications_pb2.NotificationKind
#: The consumers whose backlog must be empty at the end.
DURABLES = (
    ("ORDERS", "payment-svc-orders"),
    ("ORDERS", "notification-svc-orders"),
    ("PAYMENTS", "order-svc-payments"),
)
#: Codes after which placing an order again (same idempotency key) or cancelling again is safe and sensible.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
#: Seconds one call may take before it is tried again (a frozen replica answers nothing).
CALL_TIMEOUT = 5.0
#: Seconds a placement (or a cancel) keeps retrying before it counts as failed.
CALL_DEADLINE = 90.0


@dataclass(frozen=True)
class ChaosOptions:
    """How big the run is, how fast orders come, and how long it may take at most."""

    orders: int = 500
    rate: float = 5.0
    seed: int = 1
    max_seconds: float = 600.0
    cancel_every: int = 5
    watch_every: int = 10
    customers: int = 10
    decline_share: float = 0.15
    ack_wait: float = 5.0
    payment_latency_ms: float = 200.0
    fault_gap: float = 2.0
    max_rounds: int = 4
    workdir: Path | None = None
    keep: bool = False

    def __post_init__(self) -> None:
        if self.orders < 1 or self.rate <= 0 or self.max_seconds <= 0 or self.customers < 1:
            raise ValueError("orders, rate, max_seconds and customers must be positive")
        if self.payment_latency_ms / 1000 >= self.ack_wait / 2:
            raise ValueError("the payment latency must stay under half of the ack wait")


@dataclass
class Fault:
    """One fault injected: what, on which process, when (seconds since the first order) and how it went."""

    kind: str
    target: str
    at: float = 0.0
    recovered_after: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "at_s": round(self.at, 1),
            "recovered_after_s": round(self.recovered_after, 1),
            **self.detail,
        }


@dataclass
class Placed:
    """What the driver knows of one order it placed."""

    index: int
    customer: str
    method: str
    order_id: str = ""
    attempts: int = 0
    cancel: str = ""  # "", "accepted" or "too_late"
    error: str = ""


@dataclass
class Watch:
    """A WatchOrder stream opened through the gateway, reopened when its replica dies; its last message."""

    order_id: str
    reopened: int = 0
    last: orders_pb2.Order | None = None
    error: str = ""


def _say(started: float, message: str) -> None:
    print(f"[chaos {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def settled(order: orders_pb2.Order) -> bool:
    """Nothing more will happen: PAID, or CANCELLED with its money side known (as ``Order.is_settled``)."""
    if order.state == STATE.ORDER_STATE_PAID:
        return True
    return (
        order.state == STATE.ORDER_STATE_CANCELLED
        and bool(order.payment_id)
        and order.refund_state != orders_pb2.REFUND_STATE_PENDING
    )


def _customer_cancelled(order: orders_pb2.Order) -> bool:
    return any(
        s.kind == STEP.ORDER_STEP_KIND_CANCELLED and s.actor == orders_pb2.ACTOR_CUSTOMER for s in order.timeline
    )


def expected_notifications(order: orders_pb2.Order) -> Counter[int]:
    """One notification per customer-visible outcome: paid; cancelled (then refunded); payment failed."""
    if order.state == STATE.ORDER_STATE_PAID:
        return Counter([KIND.NOTIFICATION_KIND_ORDER_PAID])
    if order.state != STATE.ORDER_STATE_CANCELLED:
        return Counter()
    if not _customer_cancelled(order):
        return Counter([KIND.NOTIFICATION_KIND_PAYMENT_FAILED])
    refunded = order.refund_state == orders_pb2.REFUND_STATE_REFUNDED
    return Counter([KIND.NOTIFICATION_KIND_ORDER_CANCELLED, *([KIND.NOTIFICATION_KIND_ORDER_REFUNDED] * refunded)])


def expected_payment(order: orders_pb2.Order) -> set[int]:
    """The payment statuses the order's end allows."""
    if order.state == STATE.ORDER_STATE_PAID:
        return {PAY.PAYMENT_STATUS_SUCCEEDED}
    if not _customer_cancelled(order):
        return {PAY.PAYMENT_STATUS_DECLINED}
    if order.refund_state == orders_pb2.REFUND_STATE_REFUNDED:
        return {PAY.PAYMENT_STATUS_REFUNDED}
    return {PAY.PAYMENT_STATUS_VOIDED, PAY.PAYMENT_STATUS_DECLINED}


def seconds_to_final(order: orders_pb2.Order) -> float:
    """From placement to the order's last step (the one that settled it), by the service's clock."""
    last = max((s.time.ToDatetime() for s in order.timeline), default=order.update_time.ToDatetime())
    return max(0.0, (last - order.create_time.ToDatetime()).total_seconds())


async def _retrying(
    call: Callable[[], Awaitable[T]], deadline: float, *, retry_on: set[grpc.StatusCode] = RETRYABLE
) -> tuple[T, int]:
    """``call`` again after a retryable gRPC error (backoff 0.1 s doubling to 1 s) until ``deadline``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(), attempt
        except grpc.aio.AioRpcError as error:
            if error.code() not in retry_on or time.monotonic() > deadline:
                raise
        await asyncio.sleep(min(0.1 * 2 ** (attempt - 1), 1.0))  # backoff between attempts, not a wait for state


class Chaos:
    """One chaos run: the system on a NATS cluster, the order driver, the faults, then the checks."""

    def __init__(self, options: ChaosOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.rng = random.Random(options.seed)  # the orders: which are declined
        self.fault_rng = random.Random(options.seed + 1)  # the order of the kills in each round
        self.run_id = uuid.uuid4().hex[:8]  # idempotency keys of this run only
        self.started = time.monotonic()
        self.load_started = self.started  # set again when the first order goes out
        self.ends = self.started + options.max_seconds
        ack = str(options.ack_wait)
        env = {f"{module.upper()}_ACK_WAIT_SECONDS": ack for module in SERVICES}
        env |= {"PAYMENT_SVC_LATENCY_MS": str(options.payment_latency_ms), "PAYMENT_SVC_SEED": str(options.seed)}
        self.stack = Stack(workdir, env=env, nats_nodes=3)
        assert isinstance(self.stack.nats, NatsCluster)
        self.cluster: NatsCluster = self.stack.nats
        self.envoy: EnvoyProcess | None = None
        self.placed: list[Placed] = []
        self.watches: list[Watch] = []
        self.faults: list[Fault] = []
        self.rounds = 0  # rounds of faults injected in full
        self.placing_done = asyncio.Event()
        self.watching: list[asyncio.Task[None]] = []
        self.tokens: dict[str, str] = {}
        self.operator = ""

    def say(self, message: str) -> None:
        _say(self.started, message)

    def now(self) -> float:
        return time.monotonic() - self.started

    def into_load(self) -> float:
        """Seconds since the first order went out."""
        return time.monotonic() - self.load_started

    # ── the system ─────────────────────────────────────────────────────────────

    async def start(self) -> None:
        self.say(f"starting 3 NATS nodes, 2 replicas of each service and the gateway in {self.workdir}")
        await self.stack.start()
        for module in SERVICES:
            await self.stack.add_replica(module)
        orders = self.stack.processes_of("order_svc")
        config = self.stack.gateway_config(
            port=free_port(),
            admin_port=free_port(),
            page=page_or_placeholder(self.workdir / "envoy"),
            rate_limit_per_minute=1_000_000,  # the chaos customers place far more than a person would
            rate_limit_burst=100_000,
            upstreams=tuple(("127.0.0.1", p.grpc_port) for p in orders),
        )
        self.envoy = EnvoyProcess(config, self.workdir / "envoy").start()
        await self.envoy.wait_ready()
        customers = [f"chaos-{i}" for i in range(self.options.customers)]
        tokens = await asyncio.gather(*(asyncio.to_thread(self.stack.token, c) for c in customers))
        self.tokens = dict(zip(customers, tokens, strict=True))
        self.operator = await asyncio.to_thread(self.stack.token, "chaos-operator", [ADMIN_ROLE])
        self.say(f"up: gateway {config.url} over order_svc {[p.target for p in orders]}, NATS {self.cluster.address}")

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.terminate()
        self.stack.stop()

    def process_name(self, process: ServiceProcess) -> str:
        return f"{process.module}-{self.stack.processes_of(process.module).index(process) + 1}"

    # ── the orders ─────────────────────────────────────────────────────────────

    async def drive(self, orders: orders_pb2_grpc.OrderServiceAsyncStub) -> None:
        """Place the orders at a steady rate (each its own task), cancelling some at once; watch some."""
        tasks: list[asyncio.Task[None]] = []
        interval = 1.0 / self.options.rate
        first = self.load_started = time.monotonic()
        reserve = min(120.0, self.options.max_seconds / 3)  # time kept for the orders to settle and the checks
        for index in range(self.options.orders):
            due = first + index * interval
            if due > self.ends - reserve:
                self.say(f"out of time: {index} of {self.options.orders} orders placed")
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # the steady arrival rate itself
            customer = f"chaos-{index % self.options.customers}"
            method = "pm_card_declined" if self.rng.random() < self.options.decline_share else "pm_card_visa"
            placed = Placed(index, customer, method)
            self.placed.append(placed)
            tasks.append(asyncio.create_task(self.place(orders, placed)))
            if (index + 1) % 50 == 0:
                self.say(f"{index + 1} orders sent")
        await asyncio.gather(*tasks)
        self.placing_done.set()

    async def place(self, orders: orders_pb2_grpc.OrderServiceAsyncStub, placed: Placed) -> None:
        metadata = (*bearer(self.tokens[placed.customer]), ("idempotency-key", f"chaos-{self.run_id}-{placed.index}"))
        request = order_request(placed.method, customer_id=placed.customer, quantity=1 + placed.index % 3)
        deadline = time.monotonic() + CALL_DEADLINE
        try:
            order, placed.attempts = await _retrying(
                lambda: orders.CreateOrder(request, metadata=metadata, timeout=CALL_TIMEOUT), deadline
            )
        except grpc.aio.AioRpcError as error:
            placed.error = f"{error.code().name}: {error.details()}"
            return
        placed.order_id = order.order_id
        if self.options.cancel_every and (placed.index + 1) % self.options.cancel_every == 0:
            await self.cancel(orders, placed, deadline)
        if self.options.watch_every and (placed.index + 1) % self.options.watch_every == 0:
            watch = Watch(order.order_id)
            self.watches.append(watch)
            self.watching.append(asyncio.create_task(self.watch(orders, watch, placed.customer)))

    async def cancel(self, orders: orders_pb2_grpc.OrderServiceAsyncStub, placed: Placed, deadline: float) -> None:
        """Cancel at once: it races the payment, which payment_svc started (or not) a few ms ago."""
        request = orders_pb2.CancelOrderRequest(order_id=placed.order_id, reason="chaos: changed my mind")
        try:
            await _retrying(
                lambda: orders.CancelOrder(
                    request, metadata=bearer(self.tokens[placed.customer]), timeout=CALL_TIMEOUT
                ),
                deadline,
            )
            placed.cancel = "accepted"
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                placed.error = f"cancel {error.code().name}: {error.details()}"
                return
            placed.cancel = "too_late"  # the payment's outcome got there first (or a retry found it cancelled)

    async def watch(self, orders: orders_pb2_grpc.OrderServiceAsyncStub, watch: Watch, customer: str) -> None:
        """Follow the order through the gateway until the stream ends (settled), reopening it after a failure."""
        request = orders_pb2.WatchOrderRequest(order_id=watch.order_id)
        while time.monotonic() < self.ends - 15:
            try:
                async for update in orders.WatchOrder(request, metadata=bearer(self.tokens[customer])):
                    watch.last = update
                if watch.last is not None and settled(watch.last):
                    return
            except grpc.aio.AioRpcError as error:
                watch.error = error.code().name
            watch.reopened += 1
            await asyncio.sleep(0.2)  # backoff before reopening
        watch.error = watch.error or "deadline"

    # ── the faults ─────────────────────────────────────────────────────────────

    def plan(self, round_: int) -> list[tuple[str, str]]:
        """One round: a NATS node, every replica of every service (in a seeded order), a leader, a freeze."""
        kills = [
            (process.module, str(i)) for module in SERVICES for i, process in enumerate(self.stack.processes_of(module))
        ]
        self.fault_rng.shuffle(kills)
        streams = ("ORDERS", "PAYMENTS")
        frozen = ("payment_svc", "notification_svc", "order_svc")[round_ % 3]
        steps = [("nats_node_kill", streams[round_ % 2])]
        steps += [("service_kill", f"{m}:{i}") for m, i in kills[:3]]
        steps += [("stream_leader_stepdown", streams[round_ % 2]), ("consumer_pause", frozen)]
        steps += [("service_kill", f"{m}:{i}") for m, i in kills[3:]]
        return steps

    async def inject_all(self) -> None:
        """Faults in turn while orders arrive: every kind at least once, more rounds while orders still come."""
        first_orders = min(20, self.options.orders // 10)

        async def flowing() -> bool:  # the first orders flow before the first fault
            return len(self.placed) >= first_orders or self.placing_done.is_set()

        await wait_for(flowing, timeout=self.options.max_seconds, interval=0.05, what="the first orders")
        for round_ in range(self.options.max_rounds):
            if round_ > 0 and self.placing_done.is_set():
                return
            for kind, target in self.plan(round_):
                if round_ > 0 and self.placing_done.is_set():
                    return
                if time.monotonic() > self.ends - min(60.0, self.options.max_seconds / 5):
                    self.say("no time left for more faults")
                    return
                fault = Fault(kind, target, at=self.into_load())
                began = time.monotonic()
                await self.inject(fault)
                fault.recovered_after = time.monotonic() - began
                self.faults.append(fault)
                self.say(
                    f"fault {len(self.faults)}: {fault.kind} {fault.target}, recovered in {fault.recovered_after:.1f}s"
                )
                await asyncio.sleep(self.options.fault_gap)  # the pace of the faults, not a wait for a state
            self.rounds += 1

    async def inject(self, fault: Fault) -> None:
        if fault.kind == "nats_node_kill":
            await self.kill_nats_node(fault)
        elif fault.kind == "service_kill":
            module, index = fault.target.split(":")
            process = self.stack.processes_of(module)[int(index)]
            fault.target = self.process_name(process)
            process.kill()
            await self.stack.restart(process)
        elif fault.kind == "stream_leader_stepdown":
            old, new = await self.cluster.stepdown(fault.target)
            fault.detail = {"leader": f"{old} -> {new}"}
            await self.cluster.wait_leaders(timeout=60)
        elif fault.kind == "consumer_pause":
            await self.pause(fault)
        else:
            raise ValueError(f"unknown fault {fault.kind}")

    async def kill_nats_node(self, fault: Fault) -> None:
        """SIGKILL the node leading ``fault.target`` (a stream); the rest elect leaders and keep serving."""
        leader = await self.cluster.stream_leader(fault.target)
        index = self.cluster.index_of(leader) if leader else 0
        node = self.cluster.nodes[index]
        fault.target = f"{node.name} (leading {fault.target})"
        killed = time.monotonic()
        self.cluster.kill(index)
        leaders = await self.cluster.wait_leaders(timeout=60)
        fault.detail["leaders_again_after_s"] = round(time.monotonic() - killed, 1)
        fault.detail["leaders_without_it"] = sorted(set(leaders.values()))
        await asyncio.to_thread(self.cluster.restart, index)
        await self.cluster.wait_rejoined(index, timeout=120)

    async def pause(self, fault: Fault) -> None:
        """SIGSTOP the second replica of a service while its consumer has work out, past the ack wait; SIGCONT."""
        module = fault.target
        process = self.stack.processes_of(module)[1]
        fault.target = self.process_name(process)
        stream, durable = next((s, d) for s, d in DURABLES if d.startswith(module.replace("_", "-")))
        nc = await self.cluster.connect_admin()
        try:
            js = nc.jetstream(timeout=2)

            async def busy() -> bool:
                return bool((await js.consumer_info(stream, durable)).num_ack_pending > 0)

            with contextlib.suppress(TimeoutError):  # no work out at all within the time: freeze it anyway
                await wait_for(busy, timeout=10, interval=0.02, what=f"{durable} to have messages out")
            fault.detail["ack_pending_at_pause"] = (await js.consumer_info(stream, durable)).num_ack_pending
        finally:
            await nc.close()
        assert process.proc is not None
        pid = process.proc.pid
        paused = time.monotonic()
        process.pause()
        try:

            async def frozen_past_ack_wait() -> bool:
                state = await asyncio.to_thread(_process_state, pid)
                if state not in ("T", "t"):
                    raise RuntimeError(f"{fault.target} is not stopped (state {state})")
                return time.monotonic() - paused > self.options.ack_wait + 1.0

            await wait_for(
                frozen_past_ack_wait,
                timeout=self.options.ack_wait + 10,
                interval=0.1,
                what=f"{fault.target} frozen past the ack wait",
            )
        finally:
            process.resume()
        fault.detail["frozen_s"] = round(time.monotonic() - paused, 1)
        await process.wait_healthy()

    # ── the end: everything settles, then the checks ───────────────────────────

    async def settle(self, orders: orders_pb2_grpc.OrderServiceAsyncStub) -> dict[str, orders_pb2.Order]:
        """Every placed order, read until all are settled (or time is up: what there is)."""
        ids = [p.order_id for p in self.placed if p.order_id]
        latest: dict[str, orders_pb2.Order] = {}
        metadata = bearer(self.operator)
        limit = asyncio.Semaphore(32)

        async def read(order_id: str) -> None:
            async with limit:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    latest[order_id] = await orders.GetOrder(
                        orders_pb2.GetOrderRequest(order_id=order_id), metadata=metadata, timeout=CALL_TIMEOUT
                    )

        async def all_settled() -> bool:
            await asyncio.gather(*(read(i) for i in ids if i not in latest or not settled(latest[i])))
            return all(i in latest and settled(latest[i]) for i in ids)

        with contextlib.suppress(TimeoutError):
            timeout = max(1.0, self.ends - 30 - time.monotonic())
            await wait_for(all_settled, timeout=timeout, interval=0.5, what="every order settled")
        return latest

    async def quiet(
        self, nc: NatsClient, expected: dict[str, Counter[int]], notes: Callable[[], Awaitable[Any]]
    ) -> bool:
        """Until no consumer has work left, the outboxes are empty and every notification is there."""
        js = nc.jetstream(timeout=5)

        async def idle() -> bool:
            for stream, durable in DURABLES:
                info = await js.consumer_info(stream, durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            if sum((await asyncio.to_thread(self.outbox_rows)).values()):
                return False
            found: dict[str, Counter[int]] = defaultdict(Counter)
            for note in await notes():
                found[note.order_id][note.kind] += 1
            return all(found[order_id] >= wanted for order_id, wanted in expected.items())

        try:
            await wait_for(idle, timeout=max(1.0, self.ends - 20 - time.monotonic()), interval=0.5, what="quiet")
        except TimeoutError:
            return False
        return True

    def outbox_rows(self) -> dict[str, int]:
        """Rows still in each service's SQLite outbox, read straight from the files (read-only)."""
        rows: dict[str, int] = {}
        for path in sorted((self.workdir / "data").glob("*.sqlite3")):
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                rows[path.stem] = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        return rows

    async def read_stream(self, nc: NatsClient, stream: str) -> list[Any]:
        """Every message of ``stream``, in order (as the admin)."""
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(stream)
        seqs = list(range(info.state.first_seq, info.state.last_seq + 1)) if info.state.messages else []
        found: list[Any] = []
        for start in range(0, len(seqs), 200):
            found += await asyncio.gather(*(js.get_msg(stream, s) for s in seqs[start : start + 200]))
        return found

    def redeliveries(self) -> int:
        """Events the services handled more than once (``attempt`` > 1 in their JSON logs)."""
        count = 0
        for path in (self.workdir / "logs").glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"event consumed"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    count += int(json.loads(line).get("attempt", 1)) > 1
        return count

    async def check(
        self,
        orders: orders_pb2_grpc.OrderServiceAsyncStub,
        payments: payments_pb2_grpc.PaymentServiceAsyncStub,
        notifications: notifications_pb2_grpc.NotificationServiceAsyncStub,
    ) -> dict[str, Any]:
        """Every invariant, measured; ``violations`` names each one that does not hold."""
        self.say("waiting for every order to settle")
        latest = await self.settle(orders)
        ids = [p.order_id for p in self.placed if p.order_id]
        expected = {i: expected_notifications(latest[i]) for i in ids if i in latest and settled(latest[i])}

        async def all_notifications() -> list[notifications_pb2.Notification]:
            return await _pages(
                lambda token: notifications.ListNotifications(
                    notifications_pb2.ListNotificationsRequest(page_size=500, page_token=token), timeout=10
                ),
                "notifications",
            )

        nc = await self.cluster.connect_admin()
        try:
            self.say("waiting for the consumers and outboxes to drain")
            went_quiet = await self.quiet(nc, expected, all_notifications)
            orders_bus = await self.read_stream(nc, "ORDERS")
            payments_bus = await self.read_stream(nc, "PAYMENTS")
            dead = await self.read_stream(nc, DEAD_LETTER_STREAM)
        finally:
            await nc.close()
        all_payments: list[payments_pb2.Payment] = await _pages(
            lambda token: payments.ListPayments(
                payments_pb2.ListPaymentsRequest(page_size=500, page_token=token), timeout=10
            ),
            "payments",
        )
        notes = await all_notifications()
        return self.verdict(latest, all_payments, notes, orders_bus, payments_bus, dead, went_quiet)

    def verdict(
        self,
        latest: dict[str, orders_pb2.Order],
        all_payments: Sequence[payments_pb2.Payment],
        notes: Sequence[notifications_pb2.Notification],
        orders_bus: Sequence[Any],
        payments_bus: Sequence[Any],
        dead: Sequence[Any],
        went_quiet: bool,
    ) -> dict[str, Any]:
        ids = [p.order_id for p in self.placed if p.order_id]
        wanted = set(ids)
        final = [latest[i] for i in ids if i in latest and settled(latest[i])]
        payments_of: dict[str, list[payments_pb2.Payment]] = defaultdict(list)
        for payment in all_payments:
            payments_of[payment.order_id].append(payment)
        notes_of: dict[str, Counter[int]] = defaultdict(Counter)
        for note in notes:
            notes_of[note.order_id][note.kind] += 1

        events: dict[str, Counter[str]] = defaultdict(Counter)
        decoders: dict[str, Any] = {
            "orders.created": order_events.OrderCreated,
            "orders.cancelled": order_events.OrderCancelled,
            "orders.refund_requested": order_events.RefundRequested,
            "payments.succeeded": payment_events.PaymentSuccessful,
            "payments.failed": payment_events.PaymentFailed,
            "payments.voided": payment_events.PaymentVoided,
            "payments.refunded": payment_events.PaymentRefunded,
        }
        for msg in [*orders_bus, *payments_bus]:
            decoder = decoders.get(msg.subject)
            if decoder is not None:
                events[decoder.FromString(msg.data or b"").order_id][msg.subject] += 1

        missing_payments = duplicated_payments = mismatched = 0
        missing_notes = duplicated_notes = duplicated_steps = 0
        missing_events = duplicated_events = 0
        outcomes: Counter[str] = Counter()
        for order in final:
            oid = order.order_id
            mine = payments_of.get(oid, [])
            missing_payments += not mine
            duplicated_payments += max(0, len(mine) - 1)
            if mine and mine[0].status not in expected_payment(order):
                mismatched += 1
            want, got = expected_notifications(order), notes_of.get(oid, Counter())
            missing_notes += sum((want - got).values())
            duplicated_notes += sum((got - want).values())
            steps = Counter(s.kind for s in order.timeline)
            duplicated_steps += sum(n - 1 for n in steps.values() if n > 1)
            seen = events.get(oid, Counter())
            outcome_events = seen["payments.succeeded"] + seen["payments.failed"] + seen["payments.voided"]
            refunded = order.refund_state == orders_pb2.REFUND_STATE_REFUNDED
            for count, should in (
                (seen["orders.created"], 1),
                (outcome_events, 1),
                (seen["payments.refunded"], int(refunded)),
                (seen["orders.cancelled"], int(_customer_cancelled(order))),
            ):
                missing_events += max(0, should - count)
                duplicated_events += max(0, count - should)
            status = mine[0].status if mine else PAY.PAYMENT_STATUS_UNSPECIFIED
            outcomes[_outcome(order, status)] += 1

        orphans = sorted(set(payments_of) - wanted) + sorted(set(notes_of) - wanted)
        unknown = [i for i in ids if i not in latest]
        unsettled = [i for i in ids if i in latest and not settled(latest[i])]
        refunded_payments = sum(p.status == PAY.PAYMENT_STATUS_REFUNDED for p in all_payments)
        refunded_orders = sum(o.refund_state == orders_pb2.REFUND_STATE_REFUNDED for o in final)
        refund_events = sum(msg.subject == "payments.refunded" for msg in payments_bus)
        pending_refunds = sum(o.refund_state == orders_pb2.REFUND_STATE_PENDING for o in latest.values())
        refunds_ok = refunded_payments == refunded_orders == refund_events and pending_refunds == 0
        outbox = self.outbox_rows()
        times = sorted(seconds_to_final(o) for o in final)
        place_failures = [p for p in self.placed if not p.order_id]
        cancel_errors = [p for p in self.placed if p.order_id and p.error]
        watches_settled = sum(w.last is not None and settled(w.last) for w in self.watches)
        dead_letters = [
            {
                "consumer": (msg.headers or {}).get("Dlq-Consumer", ""),
                "reason": (msg.headers or {}).get("Dlq-Reason", "")[:200],
            }
            for msg in dead
        ]
        kinds = Counter(f.kind for f in self.faults)
        cancels = Counter(p.cancel for p in self.placed if p.cancel)
        kinds["cancel_race"] = sum(cancels.values())
        lost = len(unknown) + len(unsettled) + len(place_failures)
        duplicated = duplicated_payments + duplicated_notes + duplicated_events + duplicated_steps

        violations: list[str] = []
        if len(self.placed) < self.options.orders:
            violations.append(f"only {len(self.placed)} of {self.options.orders} orders were sent in time")
        for name, value in (
            ("orders lost (never accepted, unknown or never settled)", lost),
            ("duplicates (payments, notifications, events, timeline steps)", duplicated),
            ("payments missing", missing_payments),
            ("notifications missing", missing_notes),
            ("events missing on the bus", missing_events),
            ("payment status not matching the order's end", mismatched),
            ("payments or notifications of orders never placed", len(orphans)),
            ("events stuck in an outbox", sum(outbox.values())),
            ("dead letters", len(dead_letters)),
            ("cancels that failed", len(cancel_errors)),
            ("watches that did not end settled", len(self.watches) - watches_settled),
        ):
            if value:
                violations.append(f"{name}: {value}")
        if not refunds_ok:
            violations.append("refunds not exactly once")
        if not went_quiet:
            violations.append("consumers or outboxes still busy at the end")
        if self.rounds < 1:
            violations.append(f"the first round of faults was cut short after {len(self.faults)} faults")

        return {
            "ok": not violations,
            "violations": violations,
            "orders": len(ids),
            "orders_requested": self.options.orders,
            "outcomes": dict(sorted(outcomes.items())),
            "cancels": {"requested": sum(cancels.values()), **dict(sorted(cancels.items()))},
            "faults_injected": {
                "count": len(self.faults),
                "rounds": self.rounds,
                "kinds": dict(sorted(kinds.items())),
                "list": [f.report() for f in self.faults],
            },
            "lost": lost,
            "lost_detail": {
                "never_accepted": len(place_failures),
                "unknown": len(unknown),
                "unsettled": len(unsettled),
            },
            "duplicated": duplicated,
            "duplicated_detail": {
                "payments": duplicated_payments,
                "notifications": duplicated_notes,
                "events": duplicated_events,
                "timeline_steps": duplicated_steps,
            },
            "missing": {"payments": missing_payments, "notifications": missing_notes, "events": missing_events},
            "mismatched_payments": mismatched,
            "refunds": {
                "payments_refunded": refunded_payments,
                "orders_refunded": refunded_orders,
                "refund_events_on_bus": refund_events,
                "orders_refund_pending": pending_refunds,
                "exactly_once": refunds_ok,
            },
            "stuck_in_outbox": sum(outbox.values()),
            "outbox_rows": outbox,
            "dead_letters": len(dead_letters),
            "dead_letter_detail": dead_letters[:20],
            "watches": {
                "opened": len(self.watches),
                "ended_settled": watches_settled,
                "reopened": sum(w.reopened for w in self.watches),
            },
            "redelivered_events": self.redeliveries(),
            "placement_attempts": {
                "retried_orders": sum(p.attempts > 1 for p in self.placed),
                "max_attempts": max((p.attempts for p in self.placed), default=0),
            },
            "max_seconds_to_final": round(times[-1], 2) if times else None,
            "p50_seconds_to_final": round(statistics.median(times), 2) if times else None,
            "p99_seconds_to_final": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2) if times else None,
        }


def _process_state(pid: int) -> str:
    """The state letter of a process (``T``: stopped), from ``/proc/<pid>/stat``."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


_CANCELLED_BY_PAYMENT: dict[int, str] = {
    PAY.PAYMENT_STATUS_VOIDED: "cancelled_voided",
    PAY.PAYMENT_STATUS_REFUNDED: "cancelled_refunded",
    PAY.PAYMENT_STATUS_DECLINED: "cancelled_declined",
}


def _outcome(order: orders_pb2.Order, status: int) -> str:
    if order.state == STATE.ORDER_STATE_PAID:
        return "paid"
    if not _customer_cancelled(order):
        return "payment_failed"
    return _CANCELLED_BY_PAYMENT.get(status, "cancelled_other")


async def _pages(fetch: Callable[[str], Awaitable[Any]], field_name: str) -> list[Any]:
    """Every item of a paged list call (``page_token`` → ``next_page_token``)."""
    found: list[Any] = []
    token = ""
    while True:
        page, _ = await _retrying(functools.partial(fetch, token), time.monotonic() + 30)
        found.extend(getattr(page, field_name))
        token = page.next_page_token
        if not token:
            return found


def machine() -> dict[str, Any]:
    """What the run ran on (for the README's record)."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = subprocess.run([binary("nats-server"), "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "nats_server": version.stdout.strip().removeprefix("nats-server: "),
    }


async def run(options: ChaosOptions) -> dict[str, Any]:
    """One chaos run from start to stop; the report (``ok`` says whether every invariant held)."""
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="order-saga-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise ValueError(f"{workdir} is not empty: a chaos run checks a system it started itself")
    chaos = Chaos(options, workdir)
    report: dict[str, Any] = {}
    try:
        await chaos.start()
        assert chaos.envoy is not None
        target = chaos.envoy.url.removeprefix("http://")
        async with (
            grpc.aio.insecure_channel(target) as gateway,
            grpc.aio.insecure_channel(chaos.stack.payment.target) as payment_channel,
            grpc.aio.insecure_channel(chaos.stack.notification.target) as notification_channel,
        ):
            orders: orders_pb2_grpc.OrderServiceAsyncStub = orders_pb2_grpc.OrderServiceStub(gateway)
            payments: payments_pb2_grpc.PaymentServiceAsyncStub = payments_pb2_grpc.PaymentServiceStub(payment_channel)
            notifications: notifications_pb2_grpc.NotificationServiceAsyncStub = (
                notifications_pb2_grpc.NotificationServiceStub(notification_channel)
            )
            chaos.say(f"{options.orders} orders at {options.rate}/s; every {options.cancel_every}th cancelled at once")
            placing = asyncio.create_task(chaos.drive(orders))
            faulting = asyncio.create_task(chaos.inject_all())
            try:
                await asyncio.gather(placing, faulting)
                chaos.say(f"every fault recovered; {len(chaos.watching)} watches to end")
                await asyncio.gather(*chaos.watching)
            finally:
                for task in (placing, faulting, *chaos.watching):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            report = await chaos.check(orders, payments, notifications)
            report["seconds_first_order_to_verdict"] = round(chaos.into_load(), 1)
    except Exception as error:
        report = {"ok": False, "violations": [f"the run failed: {error!r}"], "error": repr(error)}
    finally:
        chaos.stop()
    keep = options.keep or not report.get("ok")
    report["seconds"] = round(chaos.now(), 1)
    report["options"] = {
        "orders": options.orders,
        "rate": options.rate,
        "seed": options.seed,
        "max_seconds": options.max_seconds,
        "cancel_every": options.cancel_every,
        "ack_wait_seconds": options.ack_wait,
        "payment_latency_ms": options.payment_latency_ms,
    }
    report["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report["machine"] = machine()
    if keep:
        report["workdir"] = str(workdir)
    elif options.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devstack.chaos``: one run, its report as one JSON object on stdout; 0 iff every invariant held."""
    defaults = ChaosOptions()
    parser = argparse.ArgumentParser(prog="python -m devstack.chaos", description=__doc__)
    parser.add_argument("--orders", type=int, default=defaults.orders, help="orders to place")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="orders per second, steady")
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seeds the declines, the kill order, the provider"
    )
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="the whole run ends by then")
    parser.add_argument(
        "--cancel-every", type=int, default=defaults.cancel_every, help="cancel every Nth order at once"
    )
    parser.add_argument("--watch-every", type=int, default=defaults.watch_every, help="watch every Nth order")
    parser.add_argument("--ack-wait", type=float, default=defaults.ack_wait, help="the consumers' ack wait (seconds)")
    parser.add_argument("--max-rounds", type=int, default=defaults.max_rounds, help="rounds of faults at most")
    parser.add_argument("--fault-gap", type=float, default=defaults.fault_gap, help="seconds between two faults")
    parser.add_argument(
        "--payment-latency-ms", type=float, default=defaults.payment_latency_ms, help="the mock provider's round trip"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="state and logs (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (it is always kept when a check fails)")
    args = parser.parse_args(argv)
    try:
        options = ChaosOptions(
            orders=args.orders,
            rate=args.rate,
            seed=args.seed,
            max_seconds=args.max_seconds,
            cancel_every=args.cancel_every,
            watch_every=args.watch_every,
            ack_wait=args.ack_wait,
            max_rounds=args.max_rounds,
            fault_gap=args.fault_gap,
            payment_latency_ms=args.payment_latency_ms,
            workdir=args.workdir.resolve() if args.workdir else None,
            keep=args.keep,
        )
    except ValueError as error:
        parser.error(str(error))
    if options.workdir is not None and options.workdir.is_dir() and any(options.workdir.iterdir()):
        parser.error(f"--workdir {options.workdir} is not empty: a chaos run checks a system it started itself")
    report = asyncio.run(run(options))
    print(json.dumps(report, indent=2))
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
