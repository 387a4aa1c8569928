"""The typed client and the ``orders`` CLI against the real stack (nats-server + the three services)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from orders.v1 import orders_pb2, orders_pb2_grpc

from devstack.binaries import binary
from devstack.stack import Stack, free_port
from orders_client import (
    DeadlineExceeded,
    IdempotencyConflict,
    InvalidOrder,
    LineItem,
    Money,
    Order,
    OrderNotCancellable,
    OrderNotFound,
    OrdersClient,
    OrderState,
    RefundState,
    StepKind,
    SyncOrdersClient,
    Unreachable,
)

FINAL_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]


def customer() -> str:
    """A customer id of its own, so that one test's orders never show up in another's list."""
    return f"client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[OrdersClient]:
    async with OrdersClient(stack.order.target) as opened:
        yield opened


class LoseFirstAnswer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Lets the first CreateOrder reach the service and complete, then reports ``code`` instead of its answer."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.keys: list[str] = []

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        if details.method.endswith(b"/CreateOrder"):
            self.keys.append(str(details.metadata.get("idempotency-key")))
            if len(self.keys) == 1:
                await call  # the service saved the order; only its answer is lost
                raise grpc.aio.AioRpcError(
                    self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "injected: answer lost", None
                )
        return call


async def test_place_order_watch_until_paid(client: OrdersClient) -> None:
    who = customer()
    placed = await client.place_order(who, ["SKU-1:2:12.50", "SKU-2:1:0.99"], payment_method="pm_card_visa")
    assert placed.state is OrderState.CREATED
    assert placed.customer_id == who
    assert placed.total == Money(Decimal("25.99"), "USD")
    assert placed.line_items[0] == LineItem("SKU-1", 2, Money(Decimal("12.50")))

    seen = [order async for order in client.watch_order(placed)]
    assert seen[-1].state is OrderState.PAID
    assert [o.state for o in seen if o.is_final] == [OrderState.PAID]  # the watch ends once settled
    assert seen[-1].is_settled
    assert seen[-1].payment_id
    assert seen[-1].refund_state is RefundState.NONE
    assert [step.kind for step in seen[-1].timeline] == [StepKind.PLACED, StepKind.PAYMENT_SUCCEEDED]
    assert all(step.time.tzinfo is not None for step in seen[-1].timeline)
    assert await client.get_order(placed.order_id) == seen[-1]


async def test_declined_payment_ends_cancelled_with_its_reason(client: OrdersClient) -> None:
    placed = await client.place_order(customer(), ["SKU-1:1:5"], payment_method="pm_card_declined")
    final = await client.wait_until_final(placed, timeout=FINAL_TIMEOUT)
    assert final.state is OrderState.CANCELLED
    assert final.is_settled
    assert final.cancel_reason == "payment failed: Your card was declined."
    assert [step.kind for step in final.timeline] == [StepKind.PLACED, StepKind.PAYMENT_DECLINED, StepKind.CANCELLED]
    assert await client.wait_until_final(final, timeout=0.001) is final  # already settled: no call needed


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_a_retried_place_order_creates_one_order(stack: Stack, code: grpc.StatusCode) -> None:
    who = customer()
    lose = LoseFirstAnswer(code)
    async with OrdersClient(stack.order.target, interceptors=[lose]) as client:
        order = await client.place_order(who, ["SKU-1:2:12.50"], payment_method="pm_card_visa")
        assert len(lose.keys) == 2, "the first attempt failed and was retried"
        assert lose.keys[0] == lose.keys[1], "the retry reused the idempotency key"
        listed = [o async for o in client.list_orders(who)]
    assert [o.order_id for o in listed] == [order.order_id]


async def test_the_same_idempotency_key_returns_the_first_order(client: OrdersClient) -> None:
    who, key = customer(), str(uuid.uuid4())
    first = await client.place_order(who, ["SKU-1:1:1.00"], idempotency_key=key)
    again = await client.place_order(who, ["SKU-1:1:1.00"], idempotency_key=key)
    assert again.order_id == first.order_id
    with pytest.raises(IdempotencyConflict) as caught:
        await client.place_order(who, ["SKU-1:9:1.00"], idempotency_key=key)
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [o.order_id async for o in client.list_orders(who)] == [first.order_id]


async def test_place_order_says_unreachable_at_once_when_nobody_listens() -> None:
    async with OrdersClient(f"127.0.0.1:{free_port()}", timeout=0.5, deadline=30, connect_timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(Unreachable):
            await client.place_order(customer(), ["SKU-1:1:1"])
        assert time.monotonic() - started < 3  # the connect timeout, not the 30 s deadline


async def test_list_orders_iterates_every_page_newest_first(client: OrdersClient) -> None:
    who = customer()
    placed = [await client.place_order(who, [f"SKU-{i}:1:1"]) for i in range(7)]
    listed = [o async for o in client.list_orders(who, page_size=3)]
    assert [o.order_id for o in listed] == [o.order_id for o in reversed(placed)]
    assert len({o.order_id async for o in client.list_orders("")}) >= 7


async def test_invalid_order_names_every_bad_field(client: OrdersClient) -> None:
    with pytest.raises(InvalidOrder) as caught:
        await client.place_order("", ["SKU-1:0:12.50", "SKU-2:1:-1"], payment_method="pm_bogus")
    fields = {v.field for v in caught.value.violations}
    assert fields >= {
        "order.customer_id",
        "order.payment_method",
        "order.line_items[0].quantity",
        "order.line_items[1].unit_price",
    }
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_order_is_not_found(client: OrdersClient) -> None:
    with pytest.raises(OrderNotFound) as caught:
        await client.get_order("no-such-order")
    assert caught.value.resource_name == "orders/no-such-order"
    with pytest.raises(OrderNotFound):
        await client.cancel_order("no-such-order")
    with pytest.raises(OrderNotFound):
        async for _ in client.watch_order("no-such-order"):
            pass


async def test_a_paid_order_cannot_be_cancelled(client: OrdersClient) -> None:
    order = await client.place_order(customer(), ["SKU-1:1:3"], payment_method="pm_card_visa")
    paid = await client.wait_until_final(order, timeout=FINAL_TIMEOUT)
    assert paid.state is OrderState.PAID
    with pytest.raises(OrderNotCancellable) as caught:
        await client.cancel_order(paid.order_id)
    assert caught.value.reason == "ORDER_NOT_CANCELLABLE"


def test_sync_client_places_lists_and_waits(stack: Stack) -> None:
    who = customer()
    with SyncOrdersClient(stack.order.target) as client:
        order = client.place_order(who, [LineItem.parse("SKU-1:2:12.50")], payment_method="pm_card_visa")
        states = [o.state for o in client.watch_order(order.order_id)]
        assert states[-1] is OrderState.PAID
        final = client.wait_until_final(order.order_id, timeout=FINAL_TIMEOUT)
        assert final.state is OrderState.PAID
        assert [o.order_id for o in client.list_orders(who, page_size=1)] == [order.order_id]
        with pytest.raises(OrderNotFound):
            client.get_order("no-such-order")


def test_the_readme_example_runs(stack: Stack) -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- client-example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in block.splitlines() if line.strip()]) == 3
    code = block.replace("127.0.0.1:50051", stack.order.target)
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=False, cwd=ROOT
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "PAID\n", "")


# --- the `orders` command ---------------------------------------------------------------------


def orders_cli(stack: Stack, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORDERS_TARGET": stack.order.target, "NO_COLOR": "1"}
    return subprocess.run(
        [binary("orders"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def api_json(stack: Stack, method: str, request: Any) -> Any:
    """What the service answers, in the proto3 JSON mapping the gateway prints (always_print_primitive_fields)."""
    with grpc.insecure_channel(stack.order.target) as channel:
        answer = getattr(orders_pb2_grpc.OrderServiceStub(channel), method)(request, timeout=10)
    return json_format.MessageToDict(answer, always_print_fields_with_no_presence=True)


def test_cli_place_wait_get_list_and_watch(stack: Stack) -> None:
    who = customer()
    placed = orders_cli(
        stack, "--json", "place", "--customer", who, "--item", "SKU-1:2:12.50", "--payment", "pm_card_visa", "--wait"
    )
    assert placed.returncode == 0, placed.stderr
    order = json.loads(placed.stdout)
    assert order["state"] == "ORDER_STATE_PAID"
    assert order["total"] == {"currencyCode": "USD", "units": "25", "nanos": 0}
    assert order["refundState"] == "REFUND_STATE_UNSPECIFIED"
    assert [step["kind"] for step in order["timeline"]] == [
        "ORDER_STEP_KIND_PLACED",
        "ORDER_STEP_KIND_PAYMENT_SUCCEEDED",
    ]
    assert order == api_json(stack, "GetOrder", orders_pb2.GetOrderRequest(order_id=order["orderId"]))

    shown = orders_cli(stack, "get", order["orderId"])
    assert shown.returncode == 0, shown.stderr
    assert order["name"] in shown.stdout
    assert "PAID" in shown.stdout
    assert "25.00 USD" in shown.stdout
    assert "none owed" in shown.stdout
    assert "payment succeeded" in shown.stdout

    listed = orders_cli(stack, "list", "--customer", who)
    assert listed.returncode == 0, listed.stderr
    assert order["orderId"] in listed.stdout

    watched = orders_cli(stack, "watch", order["orderId"])
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.strip().splitlines()
    assert "  placed  by customer" in lines[0]
    assert lines[-1] == f"{order['name']}  PAID"

    as_json = orders_cli(stack, "list", "--customer", who, "--json")
    expected = api_json(stack, "ListOrders", orders_pb2.ListOrdersRequest(customer_id=who))
    assert json.loads(as_json.stdout) == expected
    assert [o["orderId"] for o in expected["orders"]] == [order["orderId"]]


def test_cli_watch_prints_each_change_as_json_lines(stack: Stack) -> None:
    placed = orders_cli(
        stack, "--json", "place", "--customer", customer(), "--item", "A:1:1", "--payment", "pm_card_declined"
    )
    order_id = json.loads(placed.stdout)["orderId"]
    watched = orders_cli(stack, "--json", "watch", order_id)
    assert watched.returncode == 0, watched.stderr
    changes = [json.loads(line) for line in watched.stdout.splitlines()]
    assert changes[-1]["state"] == "ORDER_STATE_CANCELLED"
    assert changes[-1]["cancelReason"] == "payment failed: Your card was declined."
    assert changes[-1]["paymentId"]
    assert changes[-1] == api_json(stack, "GetOrder", orders_pb2.GetOrderRequest(order_id=order_id))


def test_cli_invalid_input_names_the_option_and_field(stack: Stack) -> None:
    bad = orders_cli(stack, "place", "--customer", customer(), "--item", "SKU-1:2:12.50", "--item", "SKU-2:0:1")
    assert bad.returncode == 3
    assert "--item #2 (SKU-2:0:1) quantity (order.line_items[1].quantity): must be between 1 and 1000" in bad.stderr

    as_json = orders_cli(stack, "--json", "place", "--customer", " ", "--item", "SKU-1:1:1", "--payment", "nope")
    assert as_json.returncode == 3
    error = json.loads(as_json.stderr)["error"]
    assert error["type"] == "InvalidOrder"
    assert {(v["option"], v["field"]) for v in error["violations"]} == {
        ("--customer", "order.customer_id"),
        ("--payment", "order.payment_method"),
    }


def test_cli_exit_codes_for_not_found_precondition_and_unavailable(stack: Stack) -> None:
    missing = orders_cli(stack, "get", "no-such-order")
    assert (missing.returncode, missing.stderr.strip()) == (4, "error: orders/no-such-order not found")

    placed = orders_cli(stack, "--json", "place", "--customer", customer(), "--item", "A:1:1", "--wait")
    paid = json.loads(placed.stdout)
    cancelled = orders_cli(stack, "cancel", paid["orderId"])
    assert cancelled.returncode == 5
    assert "only a CREATED order can be cancelled" in cancelled.stderr

    nowhere = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    down = orders_cli(stack, "--target", nowhere, "get", "x")
    assert time.monotonic() - started < 5
    assert down.returncode == 69, down.stderr
    assert f"cannot reach the order service at {nowhere}" in down.stderr
    assert "make up" in down.stderr
    assert "--target" in down.stderr

    usage = orders_cli(stack, "place", "--customer", "alice")
    assert usage.returncode == 2
    assert "--item" in usage.stderr


# --- cancelling needs the order to stay CREATED: stop payment_svc for a moment -----------------


async def test_cancel_a_created_order_and_watch_it_settle(stack: Stack, client: OrdersClient) -> None:
    stack.payment.terminate()
    try:
        order = await client.place_order(customer(), ["SKU-1:1:1"], payment_method="pm_card_visa")
        watch = client.watch_order(order)
        assert (await anext(watch)).state is OrderState.CREATED
        with pytest.raises(DeadlineExceeded):
            await client.wait_until_final(order, timeout=0.3)  # no payment service: it stays CREATED

        cancelled = await client.cancel_order(order.order_id, reason="changed my mind")
        assert cancelled.state is OrderState.CANCELLED
        assert cancelled.cancel_reason == "changed my mind"
        assert not cancelled.is_settled  # the payment's outcome is not known yet
        assert await anext(watch) == cancelled
        with pytest.raises(DeadlineExceeded):
            await client.wait_until_final(order, timeout=0.3)  # cancelled, but its money side is not settled
    finally:
        stack.start_service("payment_svc")
        await stack.payment.wait_healthy()
    async with asyncio.timeout(FINAL_TIMEOUT):
        rest: list[Order] = [o async for o in watch]  # the payment step voids it, or charges and refunds it
    settled = rest[-1]
    assert settled.is_settled
    assert settled.state is OrderState.CANCELLED
    assert settled.payment_id
    assert settled.refund_state in (RefundState.NONE, RefundState.REFUNDED)
    kinds = [step.kind for step in settled.timeline]
    assert kinds[:2] == [StepKind.PLACED, StepKind.CANCELLED]
    assert kinds[-1] is (StepKind.REFUNDED if settled.refund_state is RefundState.REFUNDED else StepKind.PAYMENT_VOIDED)
    assert await client.wait_until_final(order, timeout=FINAL_TIMEOUT) == settled
