"""The client's calls against an in-process fake OrderService: settling watches, first contact, many threads.

The fake answers only calls that carry ``authorization: Bearer <one of its tokens>`` (UNAUTHENTICATED
otherwise), as order_svc does, and records which token each call brought.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.type import money_pb2
from orders.v1 import orders_pb2, orders_pb2_grpc

from orders_client import OrdersClient, OrderState, RefundState, StepKind, SyncOrdersClient, Unavailable, Unreachable

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
Context = grpc.aio.ServicerContext[Any, Any]
TOKEN = "token-of-alice"  # what the fake accepts unless told otherwise


def step(
    kind: orders_pb2.OrderStepKind.ValueType,
    second: int,
    detail: str = "",
    actor: orders_pb2.Actor.ValueType = orders_pb2.ACTOR_PAYMENT,
) -> orders_pb2.OrderStep:
    """One step, ``second`` seconds after T0."""
    at = timestamp_pb2.Timestamp(seconds=int(T0.timestamp()) + second)
    return orders_pb2.OrderStep(kind=kind, time=at, actor=actor, detail=detail)


def version(
    order_id: str,
    state: orders_pb2.OrderState.ValueType,
    steps: Sequence[orders_pb2.OrderStep],
    *,
    payment_id: str = "",
    refund: orders_pb2.RefundState.ValueType = orders_pb2.REFUND_STATE_UNSPECIFIED,
    cancel_reason: str = "",
) -> orders_pb2.Order:
    """One version of an order as the service sends it."""
    return orders_pb2.Order(
        name=f"orders/{order_id}",
        order_id=order_id,
        customer_id="alice",
        line_items=[
            orders_pb2.LineItem(
                sku="SKU-1", quantity=2, unit_price=money_pb2.Money(currency_code="USD", units=12, nanos=500_000_000)
            )
        ],
        total=money_pb2.Money(currency_code="USD", units=25),
        state=state,
        payment_method="pm_card_visa",
        create_time=steps[0].time,
        update_time=steps[-1].time,
        cancel_reason=cancel_reason,
        payment_id=payment_id,
        refund_state=refund,
        timeline=steps,
    )


def paid(order_id: str) -> list[orders_pb2.Order]:
    """CREATED, then PAID."""
    placed = step(orders_pb2.ORDER_STEP_KIND_PLACED, 0, actor=orders_pb2.ACTOR_CUSTOMER)
    charged = step(orders_pb2.ORDER_STEP_KIND_PAYMENT_SUCCEEDED, 1)
    return [
        version(order_id, orders_pb2.ORDER_STATE_CREATED, [placed]),
        version(order_id, orders_pb2.ORDER_STATE_PAID, [placed, charged], payment_id=f"pay-{order_id}"),
    ]


def refunded(order_id: str) -> list[orders_pb2.Order]:
    """Cancelled by the customer while the payment was in flight: charged anyway, then refunded."""
    steps = [
        step(orders_pb2.ORDER_STEP_KIND_PLACED, 0, actor=orders_pb2.ACTOR_CUSTOMER),
        step(orders_pb2.ORDER_STEP_KIND_CANCELLED, 1, "changed my mind", actor=orders_pb2.ACTOR_CUSTOMER),
        step(orders_pb2.ORDER_STEP_KIND_PAYMENT_SUCCEEDED, 2),
        step(orders_pb2.ORDER_STEP_KIND_REFUND_REQUESTED, 2, "charged after the cancel"),
        step(orders_pb2.ORDER_STEP_KIND_REFUNDED, 3, "25.00 USD refunded"),
    ]
    cancelled, reason, pay = orders_pb2.ORDER_STATE_CANCELLED, "changed my mind", f"pay-{order_id}"
    return [
        version(order_id, orders_pb2.ORDER_STATE_CREATED, steps[:1]),
        version(order_id, cancelled, steps[:2], cancel_reason=reason),
        version(
            order_id, cancelled, steps[:4], cancel_reason=reason, payment_id=pay, refund=orders_pb2.REFUND_STATE_PENDING
        ),
        version(
            order_id, cancelled, steps, cancel_reason=reason, payment_id=pay, refund=orders_pb2.REFUND_STATE_REFUNDED
        ),
    ]


class FakeOrders(orders_pb2_grpc.OrderServiceServicer):
    """A tiny OrderService of canned histories: reads answer an order's last version, WatchOrder streams them all.

    ``before_next(i)`` is awaited before WatchOrder sends version ``i`` (i ≥ 1); ``unavailable``
    GetOrder calls answer UNAVAILABLE first; the first WatchOrder drops with UNAVAILABLE after
    ``drop_watch_after`` versions; ``calls`` counts each method's calls. Every call must carry
    ``authorization: Bearer <token>`` with a token in ``tokens`` (UNAUTHENTICATED otherwise, not
    counted in ``calls`` but in ``attempts``); ``seen`` lists (method, token) of every call that brought one.
    """

    def __init__(self, *histories: list[orders_pb2.Order]) -> None:
        self.tokens = {TOKEN}
        self.seen: list[tuple[str, str]] = []
        self.idempotency_keys: list[str] = []
        self.created: list[orders_pb2.CreateOrderRequest] = []
        self.histories = {history[0].order_id: history for history in histories}
        self.before_next: Callable[[int], Awaitable[None]] | None = None
        self.unavailable = 0
        self.drop_watch_after: int | None = None
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()  # calls refused for their token included
        self.sent: dict[str, int] = {}  # order id → the last version a watch sent

    async def _signed_in(self, method: str, context: Context) -> None:
        """As order_svc: exactly one ``authorization: Bearer <token>``, and a token it knows."""
        self.attempts[method] += 1
        metadata = list(context.invocation_metadata() or ())
        values = [str(value) for key, value in metadata if key == "authorization"]
        scheme, _, token = values[0].partition(" ") if len(values) == 1 else ("", "", "")
        if token:
            self.seen.append((method, token))
        if scheme != "Bearer" or not token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "exactly one bearer token is required")
        if token not in self.tokens:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the token is not valid: Signature has expired")
        self.calls[method] += 1
        self.idempotency_keys += [str(value) for key, value in metadata if key == "idempotency-key"]

    async def _history(self, order_id: str, context: Context) -> list[orders_pb2.Order]:
        if order_id not in self.histories:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"orders/{order_id} not found")
        return self.histories[order_id]

    async def CreateOrder(self, request: orders_pb2.CreateOrderRequest, context: Context) -> orders_pb2.Order:
        await self._signed_in("CreateOrder", context)
        self.created.append(request)
        return next(iter(self.histories.values()))[0]

    async def GetOrder(self, request: orders_pb2.GetOrderRequest, context: Context) -> orders_pb2.Order:
        await self._signed_in("GetOrder", context)
        if self.unavailable > 0:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: restarting")
        return (await self._history(request.order_id, context))[-1]

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: Context
    ) -> orders_pb2.ListOrdersResponse:
        await self._signed_in("ListOrders", context)
        return orders_pb2.ListOrdersResponse(orders=[history[-1] for history in self.histories.values()])

    async def CancelOrder(self, request: orders_pb2.CancelOrderRequest, context: Context) -> orders_pb2.Order:
        await self._signed_in("CancelOrder", context)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")

    async def WatchOrder(
        self, request: orders_pb2.WatchOrderRequest, context: Context
    ) -> AsyncIterator[orders_pb2.Order]:
        await self._signed_in("WatchOrder", context)
        history = await self._history(request.order_id, context)
        first = self.sent.get(request.order_id, 0)  # a watch opened again starts at the order as it is now
        for i, message in enumerate(history[first:], start=first):
            if i > first and self.before_next is not None:
                await self.before_next(i)
            if i == self.drop_watch_after and self.calls["WatchOrder"] == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: connection lost")
            self.sent[request.order_id] = i
            yield message


@asynccontextmanager
async def serving(fake: FakeOrders) -> AsyncIterator[str]:
    """Serve ``fake`` with grpc.aio on 127.0.0.1 (a free port); yields its target."""
    server = grpc.aio.server()
    orders_pb2_grpc.add_OrderServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds; AssertionError after ``timeout`` seconds."""
    ends = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < ends, "condition not met in time"
        await asyncio.sleep(0.01)


# --- watches end once the order is settled ---------------------------------------------------


async def test_watch_goes_on_past_a_cancel_until_the_refund_settles_it() -> None:
    async with serving(FakeOrders(refunded("o-1"))) as target, OrdersClient(target, token=TOKEN) as client:
        seen = [order async for order in client.watch_order("o-1")]
    assert [(o.state, o.refund_state, o.is_settled) for o in seen] == [
        (OrderState.CREATED, RefundState.NONE, False),
        (OrderState.CANCELLED, RefundState.NONE, False),  # cancelled, the payment's outcome not known yet
        (OrderState.CANCELLED, RefundState.PENDING, False),
        (OrderState.CANCELLED, RefundState.REFUNDED, True),
    ]
    assert [s.kind for s in seen[-1].timeline][-2:] == [StepKind.REFUND_REQUESTED, StepKind.REFUNDED]


async def test_wait_until_final_returns_the_settled_order_not_the_first_cancelled_one() -> None:
    async with serving(FakeOrders(refunded("o-1"))) as target, OrdersClient(target, token=TOKEN) as client:
        final = await client.wait_until_final("o-1", timeout=5)
        assert final.refund_state is RefundState.REFUNDED
        assert await client.wait_until_final(final, timeout=0.001) is final  # settled: no call needed


async def test_watch_of_a_paid_order_ends_at_paid() -> None:
    async with serving(FakeOrders(paid("o-1"))) as target, OrdersClient(target, token=TOKEN) as client:
        states = [order.state async for order in client.watch_order("o-1")]
    assert states == [OrderState.CREATED, OrderState.PAID]


async def test_a_dropped_watch_resumes_and_yields_each_version_once() -> None:
    fake = FakeOrders(refunded("o-1"))
    fake.drop_watch_after = 2
    async with serving(fake) as target, OrdersClient(target, token=TOKEN) as client:
        seen = [order async for order in client.watch_order("o-1")]
    assert [len(order.timeline) for order in seen] == [1, 2, 4, 5]
    assert fake.calls["WatchOrder"] == 2


async def test_a_watch_the_service_keeps_ending_unsettled_gives_up_after_the_deadline() -> None:
    fake = FakeOrders(refunded("o-1")[:2])  # ends at CANCELLED before the payment's outcome is known
    async with serving(fake) as target, OrdersClient(target, token=TOKEN, deadline=0.5) as client:
        watch = client.watch_order("o-1")
        assert [(await anext(watch)).state, (await anext(watch)).state] == [OrderState.CREATED, OrderState.CANCELLED]
        started = time.monotonic()
        with pytest.raises(Unavailable, match="lost the watch of orders/o-1"):
            await anext(watch)  # reopened again and again, nothing new: not forever
    assert time.monotonic() - started < 3
    assert fake.calls["WatchOrder"] >= 2


# --- first contact: an address where nothing listens is not retried ---------------------------


async def test_nothing_listening_raises_unreachable_after_the_connect_timeout_without_retries() -> None:
    target = f"127.0.0.1:{free_port()}"
    async with OrdersClient(target, connect_timeout=0.5, deadline=30) as client:
        started = time.monotonic()
        with pytest.raises(Unreachable) as caught:
            await client.get_order("o-1")
    assert time.monotonic() - started < 2.0  # the connect timeout, not the 30 s deadline
    assert caught.value.target == target
    assert target in str(caught.value)
    assert isinstance(caught.value, Unavailable)


async def test_unavailable_from_a_service_that_answers_is_still_retried() -> None:
    fake = FakeOrders(paid("o-1"))
    fake.unavailable = 2
    async with serving(fake) as target, OrdersClient(target, token=TOKEN, connect_timeout=0.5) as client:
        order = await client.get_order("o-1")
    assert order.state is OrderState.PAID
    assert fake.calls["GetOrder"] == 3


# --- SyncOrdersClient shared by several threads -----------------------------------------------


def _use_from_threads(client: SyncOrdersClient, threads: int = 4) -> list[list[str]]:
    """Each of ``threads`` threads gets, lists and watches at the same time; returns what each saw."""

    def work(i: int) -> list[str]:
        seen = [client.get_order(f"o-{i}").order_id for _ in range(10)]
        seen += [order.order_id for order in client.list_orders()]
        seen += [order.state.value for order in client.watch_order(f"o-{i}")]
        return seen

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, range(threads)))


async def test_sync_client_shared_by_four_threads_answers_every_call() -> None:
    fake = FakeOrders(*(paid(f"o-{i}") for i in range(4)))
    async with serving(fake) as target:
        with SyncOrdersClient(target, token=TOKEN) as client:
            seen = await asyncio.to_thread(_use_from_threads, client)
    assert seen == [[f"o-{i}"] * 10 + [f"o-{n}" for n in range(4)] + ["CREATED", "PAID"] for i in range(4)]
    assert fake.calls == {"GetOrder": 40, "ListOrders": 4, "WatchOrder": 4}


THREADS_SCRIPT = """
import sys
from tests.unit.test_client_calls import TOKEN, _use_from_threads
from orders_client import SyncOrdersClient

client = SyncOrdersClient(sys.argv[1], token=lambda: TOKEN)  # a token source too: called in worker threads
assert len(_use_from_threads(client)) == 4
if sys.argv[2] == "close":
    client.close()
    client.close()
print("ok")
"""


@pytest.mark.parametrize("ending", ["close", "left-open"])
async def test_a_program_using_the_sync_client_from_four_threads_ends_without_a_traceback(ending: str) -> None:
    async with serving(FakeOrders(*(paid(f"o-{i}") for i in range(4)))) as target:
        program = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            THREADS_SCRIPT,
            target,
            ending,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await program.communicate()
    assert (program.returncode, out.decode(), err.decode()) == (0, "ok\n", "")


def test_a_closed_sync_client_refuses_calls() -> None:
    client = SyncOrdersClient(f"127.0.0.1:{free_port()}")
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get_order("o-1")
