"""The typed client and the ``orders`` CLI against the real stack (identity provider, nats-server, three services).

Every test signs in as a customer of its own at the stack's identity provider (``stack.token``):
one test's orders never show up in another's list.
"""

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
    NotAuthenticated,
    Order,
    OrderNotCancellable,
    OrderNotFound,
    OrdersClient,
    OrderState,
    PermissionDenied,
    RefundState,
    StepKind,
    SyncOrdersClient,
    Unreachable,
)

FINAL_TIMEOUT = 60.0
NO_SUCH_ORDER = str(uuid.uuid4())  # well formed (a malformed id is INVALID_ARGUMENT), but no order has it
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "orders:admin"


def customer() -> str:
    """A customer id of its own, so that one test's orders never show up in another's list."""
    return f"client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def who() -> str:
    """The customer the ``client`` fixture is signed in as."""
    return customer()


@pytest.fixture
async def token(stack: Stack, who: str) -> str:
    """A bearer token for ``who``, from the stack's identity provider (its real login form)."""
    return await asyncio.to_thread(stack.token, who)


@pytest.fixture
async def client(stack: Stack, token: str) -> AsyncIterator[OrdersClient]:
    async with OrdersClient(stack.order.target, token=token) as opened:
        yield opened


class LoseFirstAnswer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Lets the first CreateOrder reach the service and complete, then reports ``code`` instead of its answer."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.keys: list[str] = []
        self.tokens: list[str] = []

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        if details.method.endswith(b"/CreateOrder"):
            self.keys.append(str(details.metadata.get("idempotency-key")))
            self.tokens.append(str(details.metadata.get("authorization")))
            if len(self.keys) == 1:
                await call  # the service saved the order; only its answer is lost
                raise grpc.aio.AioRpcError(
                    self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "injected: answer lost", None
                )
        return call


async def test_place_order_watch_until_paid(client: OrdersClient, who: str) -> None:
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
    placed = await client.place_order("", ["SKU-1:1:5"], payment_method="pm_card_declined")  # "": the token's
    final = await client.wait_until_final(placed, timeout=FINAL_TIMEOUT)
    assert final.state is OrderState.CANCELLED
    assert final.is_settled
    assert final.cancel_reason == "payment failed: Your card was declined."
    assert [step.kind for step in final.timeline] == [StepKind.PLACED, StepKind.PAYMENT_DECLINED, StepKind.CANCELLED]
    assert await client.wait_until_final(final, timeout=0.001) is final  # already settled: no call needed


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
async def test_a_retried_place_order_creates_one_order(
    stack: Stack, who: str, token: str, code: grpc.StatusCode
) -> None:
    lose = LoseFirstAnswer(code)
    async with OrdersClient(stack.order.target, token=token, interceptors=[lose]) as client:
        order = await client.place_order(who, ["SKU-1:2:12.50"], payment_method="pm_card_visa")
        assert len(lose.keys) == 2, "the first attempt failed and was retried"
        assert lose.keys[0] == lose.keys[1], "the retry reused the idempotency key"
        assert lose.tokens == [f"Bearer {token}"] * 2, "the retry carried the token too"
        listed = [o async for o in client.list_orders(who)]
    assert [o.order_id for o in listed] == [order.order_id]


async def test_the_same_idempotency_key_returns_the_first_order(client: OrdersClient, who: str) -> None:
    key = str(uuid.uuid4())
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
            await client.place_order("", ["SKU-1:1:1"])
        assert time.monotonic() - started < 3  # the connect timeout, not the 30 s deadline


async def test_list_orders_iterates_every_page_newest_first(client: OrdersClient, who: str) -> None:
    placed = [await client.place_order(who, [f"SKU-{i}:1:1"]) for i in range(7)]
    listed = [o async for o in client.list_orders(who, page_size=3)]
    assert [o.order_id for o in listed] == [o.order_id for o in reversed(placed)]
    assert [o.order_id async for o in client.list_orders("", page_size=3)] == [o.order_id for o in listed]  # yours


async def test_invalid_order_names_every_bad_field(client: OrdersClient) -> None:
    with pytest.raises(InvalidOrder) as caught:
        await client.place_order("", ["SKU-1:0:12.50", "SKU-2:1:-1"], payment_method="pm_bogus")
    fields = {v.field for v in caught.value.violations}
    assert fields >= {
        "order.payment_method",
        "order.line_items[0].quantity",
        "order.line_items[1].unit_price",
    }
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_order_is_not_found(client: OrdersClient) -> None:
    with pytest.raises(OrderNotFound) as caught:
        await client.get_order(NO_SUCH_ORDER)
    assert caught.value.resource_name == f"orders/{NO_SUCH_ORDER}"
    with pytest.raises(OrderNotFound):
        await client.cancel_order(NO_SUCH_ORDER)
    with pytest.raises(OrderNotFound):
        async for _ in client.watch_order(NO_SUCH_ORDER):
            pass


async def test_a_paid_order_cannot_be_cancelled(client: OrdersClient) -> None:
    order = await client.place_order("", ["SKU-1:1:3"], payment_method="pm_card_visa")
    paid = await client.wait_until_final(order, timeout=FINAL_TIMEOUT)
    assert paid.state is OrderState.PAID
    with pytest.raises(OrderNotCancellable) as caught:
        await client.cancel_order(paid.order_id)
    assert caught.value.reason == "ORDER_NOT_CANCELLABLE"


def test_sync_client_places_lists_and_waits(stack: Stack, who: str, token: str) -> None:
    with SyncOrdersClient(stack.order.target, token=token) as client:
        order = client.place_order(who, [LineItem.parse("SKU-1:2:12.50")], payment_method="pm_card_visa")
        states = [o.state for o in client.watch_order(order.order_id)]
        assert states[-1] is OrderState.PAID
        final = client.wait_until_final(order.order_id, timeout=FINAL_TIMEOUT)
        assert final.state is OrderState.PAID
        assert [o.order_id for o in client.list_orders(who, page_size=1)] == [order.order_id]
        with pytest.raises(OrderNotFound):
            client.get_order(NO_SUCH_ORDER)


def test_the_readme_example_runs(stack: Stack) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("<!-- client-example", 1)[1]
    shell = example.split("```bash\n", 1)[1].split("```", 1)[0]
    assert shell.strip().startswith("export ORDERS_TOKEN=$(orders token alice)")
    block = example.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in block.splitlines() if line.strip()]) == 4
    code = block.replace("127.0.0.1:50051", stack.order.target)
    env = {**os.environ, "ORDERS_TOKEN": stack.token("alice")}
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=False, cwd=ROOT, env=env
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "PAID\n", "")


# --- identity: the token on every call, its refusal, other customers ---------------------------


async def test_without_a_token_every_call_is_not_authenticated(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_TOKEN", raising=False)
    async with OrdersClient(stack.order.target) as client:
        with pytest.raises(NotAuthenticated) as caught:
            await client.place_order("", ["SKU-1:1:1"])
        assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token" in caught.value.message
        with pytest.raises(NotAuthenticated):
            await client.get_order("no-such-order")
        with pytest.raises(NotAuthenticated):
            _ = [o async for o in client.list_orders()]
        with pytest.raises(NotAuthenticated):
            await client.cancel_order("no-such-order")
        with pytest.raises(NotAuthenticated):
            _ = [o async for o in client.watch_order("no-such-order")]


async def test_a_token_of_another_provider_or_a_garbled_one_is_refused(stack: Stack, token: str) -> None:
    header, payload, signature = token.split(".")
    for refused in ("not-a-jwt", f"{header}.{payload}.{signature[::-1]}"):
        async with OrdersClient(stack.order.target, token=refused) as client:
            with pytest.raises(NotAuthenticated, match="not"):
                await client.get_order("no-such-order")


async def test_orders_token_env_is_the_default_token(
    stack: Stack, who: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", token)
    async with OrdersClient(stack.order.target) as client:
        placed = await client.place_order("", ["SKU-1:1:1"])
    assert placed.customer_id == who


async def test_another_customers_name_is_denied_and_their_orders_are_not_found(
    stack: Stack, client: OrdersClient, who: str
) -> None:
    mallory = customer()
    with pytest.raises(PermissionDenied) as caught:
        await client.place_order(mallory, ["SKU-1:1:1"])
    assert caught.value.reason == "CUSTOMER_MISMATCH"
    assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert repr(who) in caught.value.message
    with pytest.raises(PermissionDenied):
        _ = [o async for o in client.list_orders(mallory)]

    mine = await client.place_order(who, ["SKU-1:1:1"])
    async with OrdersClient(stack.order.target, token=await asyncio.to_thread(stack.token, mallory)) as theirs:
        with pytest.raises(OrderNotFound):
            await theirs.get_order(mine.order_id)
        with pytest.raises(OrderNotFound):
            await theirs.cancel_order(mine.order_id)
        with pytest.raises(OrderNotFound):
            _ = [o async for o in theirs.watch_order(mine.order_id)]
        assert [o async for o in theirs.list_orders()] == []
    admin_token = await asyncio.to_thread(stack.token, customer(), [ADMIN])
    async with OrdersClient(stack.order.target, token=admin_token) as operator:  # the operator reads anyone's
        assert (await operator.get_order(mine.order_id)).order_id == mine.order_id
        assert [o.order_id async for o in operator.list_orders(who)] == [mine.order_id]


async def test_a_token_source_is_asked_before_every_call_and_a_refreshed_token_is_used(stack: Stack, who: str) -> None:
    issued: list[str] = []

    async def fresh_token() -> str:  # e.g. a sign-in again once the last token expired
        issued.append(await asyncio.to_thread(stack.token, who))
        return issued[-1]

    async with OrdersClient(stack.order.target, token=fresh_token) as client:
        placed = await client.place_order("", ["SKU-1:1:1"], payment_method="pm_card_visa")
        final = await client.wait_until_final(placed, timeout=FINAL_TIMEOUT)
        assert await client.get_order(placed.order_id) == final
    assert final.state is OrderState.PAID
    assert len(issued) == 3  # place, the watch, get: each with a token of its own
    assert len(set(issued)) == 3


def test_sync_client_with_a_plain_token_source(stack: Stack, who: str) -> None:
    calls: list[str] = []

    def token() -> str:
        calls.append(who)
        return stack.token(who)

    with SyncOrdersClient(stack.order.target, token=token) as client:
        order = client.place_order("", ["SKU-1:1:1"])
        assert [o.order_id for o in client.list_orders()] == [order.order_id]
    assert len(calls) == 2


# --- the `orders` command ---------------------------------------------------------------------


def orders_cli(
    stack: Stack, *args: str, token: str = "", timeout: float = 90, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``orders ARGS`` with ``$ORDERS_TOKEN=token`` and a config folder of its own (no login of the developer)."""
    env = {
        **os.environ,
        "ORDERS_TARGET": stack.order.target,
        "NO_COLOR": "1",
        "ORDERS_TOKEN": token,
        "XDG_CONFIG_HOME": str(config or stack.root / "cli-config"),
        "OIDC_ISSUER": stack.identity.issuer,
    }
    return subprocess.run(
        [binary("orders"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def api_json(stack: Stack, token: str, method: str, request: Any) -> Any:
    """What the service answers, in the proto3 JSON mapping the gateway prints (always_print_primitive_fields)."""
    with grpc.insecure_channel(stack.order.target) as channel:
        answer = getattr(orders_pb2_grpc.OrderServiceStub(channel), method)(
            request, timeout=10, metadata=(("authorization", f"Bearer {token}"),)
        )
    return json_format.MessageToDict(answer, always_print_fields_with_no_presence=True)


def test_cli_place_wait_get_list_and_watch(stack: Stack, who: str, token: str) -> None:
    placed = orders_cli(
        stack, "--json", "place", "--item", "SKU-1:2:12.50", "--payment", "pm_card_visa", "--wait", token=token
    )
    assert placed.returncode == 0, placed.stderr
    order = json.loads(placed.stdout)
    assert order["customerId"] == who  # no --customer: the token names the customer
    assert order["state"] == "ORDER_STATE_PAID"
    assert order["total"] == {"currencyCode": "USD", "units": "25", "nanos": 0}
    assert order["refundState"] == "REFUND_STATE_UNSPECIFIED"
    assert [step["kind"] for step in order["timeline"]] == [
        "ORDER_STEP_KIND_PLACED",
        "ORDER_STEP_KIND_PAYMENT_SUCCEEDED",
    ]
    assert order == api_json(stack, token, "GetOrder", orders_pb2.GetOrderRequest(order_id=order["orderId"]))

    shown = orders_cli(stack, "get", order["orderId"], token=token)
    assert shown.returncode == 0, shown.stderr
    assert order["name"] in shown.stdout
    assert "PAID" in shown.stdout
    assert "25.00 USD" in shown.stdout
    assert "none owed" in shown.stdout
    assert "payment succeeded" in shown.stdout

    listed = orders_cli(stack, "list", token=token)
    assert listed.returncode == 0, listed.stderr
    assert order["orderId"] in listed.stdout

    watched = orders_cli(stack, "watch", order["orderId"], token=token)
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.strip().splitlines()
    assert "  placed  by customer" in lines[0]
    assert lines[-1] == f"{order['name']}  PAID"

    as_json = orders_cli(stack, "list", "--customer", who, "--json", token=token)
    expected = api_json(stack, token, "ListOrders", orders_pb2.ListOrdersRequest(customer_id=who))
    assert json.loads(as_json.stdout) == expected
    assert [o["orderId"] for o in expected["orders"]] == [order["orderId"]]


def test_cli_watch_prints_each_change_as_json_lines(stack: Stack, token: str) -> None:
    placed = orders_cli(stack, "--json", "place", "--item", "A:1:1", "--payment", "pm_card_declined", token=token)
    order_id = json.loads(placed.stdout)["orderId"]
    watched = orders_cli(stack, "--json", "watch", order_id, token=token)
    assert watched.returncode == 0, watched.stderr
    changes = [json.loads(line) for line in watched.stdout.splitlines()]
    assert changes[-1]["state"] == "ORDER_STATE_CANCELLED"
    assert changes[-1]["cancelReason"] == "payment failed: Your card was declined."
    assert changes[-1]["paymentId"]
    assert changes[-1] == api_json(stack, token, "GetOrder", orders_pb2.GetOrderRequest(order_id=order_id))


def test_cli_invalid_input_names_the_option_and_field(stack: Stack, token: str) -> None:
    bad = orders_cli(stack, "place", "--item", "SKU-1:2:12.50", "--item", "SKU-2:0:1", token=token)
    assert bad.returncode == 3
    assert "--item #2 (SKU-2:0:1) quantity (order.line_items[1].quantity): must be between 1 and 1000" in bad.stderr

    as_json = orders_cli(
        stack, "--json", "place", "--item", "SKU-1:1:1", "--currency", "usd", "--payment", "nope", token=token
    )
    assert as_json.returncode == 3
    error = json.loads(as_json.stderr)["error"]
    assert error["type"] == "InvalidOrder"
    assert {(v["option"], v["field"]) for v in error["violations"]} == {
        ("--currency", "order.line_items[0].unit_price.currency_code"),
        ("--payment", "order.payment_method"),
    }


def test_cli_exit_codes_for_not_found_precondition_and_unavailable(stack: Stack, token: str) -> None:
    missing = orders_cli(stack, "get", NO_SUCH_ORDER, token=token)
    assert (missing.returncode, missing.stderr.strip()) == (4, f"error: orders/{NO_SUCH_ORDER} not found")

    placed = orders_cli(stack, "--json", "place", "--item", "A:1:1", "--wait", token=token)
    paid = json.loads(placed.stdout)
    cancelled = orders_cli(stack, "cancel", paid["orderId"], token=token)
    assert cancelled.returncode == 5
    assert "only a CREATED order can be cancelled" in cancelled.stderr

    nowhere = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    down = orders_cli(stack, "--target", nowhere, "get", "x", token=token)
    assert time.monotonic() - started < 5
    assert down.returncode == 69, down.stderr
    assert f"cannot reach the order service at {nowhere}" in down.stderr
    assert "make up" in down.stderr
    assert "--target" in down.stderr

    usage = orders_cli(stack, "place", "--customer", "alice", token=token)
    assert usage.returncode == 2
    assert "--item" in usage.stderr


def test_cli_another_customers_name_is_refused_with_exit_77(stack: Stack, who: str, token: str) -> None:
    other = customer()
    refused = orders_cli(stack, "place", "--customer", other, "--item", "A:1:1", token=token)
    assert refused.returncode == 77, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines[0] == f"error: you are signed in as {who!r}: leave customer_id empty or set it to that"
    assert "leave out --customer" in lines[1]

    as_json = orders_cli(stack, "--json", "list", "--customer", other, token=token)
    assert as_json.returncode == 77
    error = json.loads(as_json.stderr)["error"]
    assert (error["type"], error["code"], error["reason"]) == (
        "PermissionDenied",
        "PERMISSION_DENIED",
        "CUSTOMER_MISMATCH",
    )

    mine = orders_cli(stack, "--json", "place", "--customer", who, "--item", "A:1:1", token=token)  # one's own: fine
    assert mine.returncode == 0, mine.stderr


def test_cli_login_keeps_the_token_0600_and_the_next_commands_use_it(stack: Stack, tmp_path: Path) -> None:
    who = customer()
    login = orders_cli(stack, "login", who, config=tmp_path)  # --issuer from $OIDC_ISSUER
    assert login.returncode == 0, login.stderr
    kept = tmp_path / "orders" / "token"
    assert f"signed in as {who} until " in login.stdout
    assert str(kept) in login.stdout
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.parent.stat().st_mode & 0o777 == 0o700

    placed = orders_cli(stack, "--json", "place", "--item", "A:1:1", config=tmp_path)
    assert placed.returncode == 0, placed.stderr
    assert json.loads(placed.stdout)["customerId"] == who
    listed = orders_cli(stack, "--json", "list", config=tmp_path)
    assert [o["customerId"] for o in json.loads(listed.stdout)["orders"]] == [who]

    # --token, then $ORDERS_TOKEN, come before the login.
    other = customer()
    theirs = stack.token(other)
    by_env = orders_cli(stack, "--json", "place", "--item", "A:1:1", token=theirs, config=tmp_path)
    assert json.loads(by_env.stdout)["customerId"] == other
    by_option = orders_cli(stack, "--json", "--token", stack.token(who), "list", token=theirs, config=tmp_path)
    assert [o["customerId"] for o in json.loads(by_option.stdout)["orders"]] == [who]

    logout = orders_cli(stack, "logout", config=tmp_path)
    assert (logout.returncode, logout.stdout.strip()) == (0, f"signed out: removed {kept}")
    assert not kept.exists()
    after = orders_cli(stack, "list", config=tmp_path)
    assert after.returncode == 77
    assert "not signed in" in after.stderr
    assert "orders login alice" in after.stderr


def test_cli_a_token_from_another_run_of_the_provider_is_refused_with_a_hint(stack: Stack, tmp_path: Path) -> None:
    kept = tmp_path / "orders" / "token"
    kept.parent.mkdir(mode=0o700)
    token = stack.token("carol")
    header, payload, signature = token.split(".")
    kept.write_text(f"{header}.{payload}.{signature[::-1]}\n")  # as if signed with the keys of an earlier run
    refused = orders_cli(stack, "get", "x", config=tmp_path)
    assert refused.returncode == 77
    lines = refused.stderr.splitlines()
    assert lines[0].startswith(f"error: the service refused the token for 'carol' from the login kept in {kept}: ")
    assert (
        lines[1]
        == "  sign in again with `orders login carol` (the stack restarted? its identity provider got new keys)"
    )


def test_cli_token_prints_only_a_token_the_service_takes(stack: Stack) -> None:
    who = customer()
    printed = orders_cli(stack, "token", who, "--issuer", stack.identity.issuer)
    assert (printed.returncode, printed.stderr) == (0, "")
    assert printed.stdout.count("\n") == 1
    token = printed.stdout.strip()
    placed = orders_cli(stack, "--json", "place", "--item", "A:1:1", token=token)
    assert json.loads(placed.stdout)["customerId"] == who


# --- cancelling needs the order to stay CREATED: stop payment_svc for a moment -----------------


async def test_cancel_a_created_order_and_watch_it_settle(stack: Stack, client: OrdersClient) -> None:
    stack.payment.terminate()
    try:
        order = await client.place_order("", ["SKU-1:1:1"], payment_method="pm_card_visa")
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
