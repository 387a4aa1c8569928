"""Attacks on order_svc's own gRPC port: no token, forged tokens, forged headers, another customer's orders."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from orders.v1 import orders_pb2, orders_pb2_grpc

from devstack.saga import SagaClient, bearer, order_request
from devstack.stack import Stack

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def orders(stack: Stack) -> AsyncIterator[orders_pb2_grpc.OrderServiceAsyncStub]:
    """A bare stub: no token is added for the caller."""
    async with grpc.aio.insecure_channel(stack.order.target) as channel:
        yield orders_pb2_grpc.OrderServiceStub(channel)


def calls(stub: orders_pb2_grpc.OrderServiceAsyncStub, order_id: str) -> dict[str, Callable[[Metadata], Any]]:
    async def watch(metadata: Metadata) -> list[orders_pb2.Order]:
        return [o async for o in stub.WatchOrder(orders_pb2.WatchOrderRequest(order_id=order_id), metadata=metadata)]

    return {
        "CreateOrder": lambda m: stub.CreateOrder(order_request(customer_id=""), metadata=m, timeout=10),
        "GetOrder": lambda m: stub.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), metadata=m, timeout=10),
        "ListOrders": lambda m: stub.ListOrders(orders_pb2.ListOrdersRequest(), metadata=m, timeout=10),
        "CancelOrder": lambda m: stub.CancelOrder(
            orders_pb2.CancelOrderRequest(order_id=order_id), metadata=m, timeout=10
        ),
        "WatchOrder": watch,
    }


async def refused(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    return raised.value.details() or ""


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forgeries(stack: Stack, good: str) -> dict[str, str]:
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "tampered payload": f"{header}.{_b64({**claims, 'sub': 'bob'})}.{signature}",
        "cut signature": f"{header}.{payload}.{signature[: len(signature) // 2]}",
        "unknown signing key": jwt.encode({**claims, "exp": int(time.time()) + 300}, stranger, "RS256"),
        "garbage": "not-a-jwt",
    }


async def test_every_method_without_a_token_is_unauthenticated(
    stack: Stack, saga: SagaClient, orders: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    order = await saga.create()
    for name, call in calls(orders, order.order_id).items():
        details = await refused(call(()), grpc.StatusCode.UNAUTHENTICATED)
        assert "bearer token" in details, name


async def test_forged_tokens_are_unauthenticated_on_every_method(
    stack: Stack, saga: SagaClient, orders: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    order = await saga.create(customer_id="alice")
    for forgery, token in forgeries(stack, stack.token("alice")).items():
        for name, call in calls(orders, order.order_id).items():
            details = await refused(call(bearer(token)), grpc.StatusCode.UNAUTHENTICATED)
            assert details, f"{forgery} on {name}"


async def test_forged_identity_headers_change_nothing(
    stack: Stack, saga: SagaClient, orders: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    bobs = await saga.create(customer_id="bob")
    forged: Metadata = (("x-customer-id", "bob"), ("x-user", "bob"), ("x-jwt-payload", _b64({"sub": "bob"})))
    await refused(
        orders.GetOrder(orders_pb2.GetOrderRequest(order_id=bobs.order_id), metadata=forged),
        (grpc.StatusCode.UNAUTHENTICATED),
    )
    as_alice = (*saga.as_customer("alice"), *forged)
    await refused(
        orders.GetOrder(orders_pb2.GetOrderRequest(order_id=bobs.order_id), metadata=as_alice),
        grpc.StatusCode.NOT_FOUND,
    )
    placed = await orders.CreateOrder(order_request(customer_id=""), metadata=as_alice, timeout=10)
    assert placed.customer_id == "alice"


async def test_a_customer_cannot_read_watch_cancel_or_list_another_customers_orders(
    saga: SagaClient, orders: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    bobs = await saga.create(customer_id="bob-private")
    unknown = "00000000-0000-5000-8000-000000000000"
    as_eve = saga.as_customer("eve")
    answers = {}
    for order_id in (bobs.order_id, unknown):
        answers[order_id] = [
            await refused(calls(orders, order_id)[name](as_eve), grpc.StatusCode.NOT_FOUND)
            for name in ("GetOrder", "CancelOrder", "WatchOrder")
        ]
    # No oracle: another customer's order answers exactly like an id that does not exist.
    assert [a.replace(bobs.order_id, "ID") for a in answers[bobs.order_id]] == [
        a.replace(unknown, "ID") for a in answers[unknown]
    ]
    listed = await orders.ListOrders(orders_pb2.ListOrdersRequest(), metadata=as_eve, timeout=10)
    assert all(o.customer_id == "eve" for o in listed.orders)
    await refused(
        orders.ListOrders(orders_pb2.ListOrdersRequest(customer_id="bob-private"), metadata=as_eve, timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    (still,) = await saga.get_all([bobs.order_id])
    assert still.state != orders_pb2.ORDER_STATE_CANCELLED or still.cancel_reason.startswith("payment failed")


async def test_an_order_in_another_customers_name_is_permission_denied_with_the_reason(
    saga: SagaClient, orders: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await orders.CreateOrder(order_request(customer_id="bob"), metadata=saga.as_customer("mallory"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert info.reason == "CUSTOMER_MISMATCH"


async def test_the_same_idempotency_key_from_two_customers_makes_two_orders(saga: SagaClient) -> None:
    first = await saga.create(key="shared-key", customer_id="key-alice")
    second = await saga.create(key="shared-key", customer_id="key-bob")
    assert first.order_id != second.order_id
    assert (first.customer_id, second.customer_id) == ("key-alice", "key-bob")


async def test_the_operator_role_reads_and_lists_every_customers_orders_but_cannot_cancel_them(
    stack: Stack, saga: SagaClient, orders: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    carols = await saga.create(customer_id="carol")
    operator = bearer(stack.token("ops-person", ["orders:admin"]))
    got = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=carols.order_id), metadata=operator, timeout=10)
    assert got.customer_id == "carol"
    everyone = await orders.ListOrders(orders_pb2.ListOrdersRequest(page_size=500), metadata=operator, timeout=10)
    assert len({o.customer_id for o in everyone.orders}) > 1
    await refused(
        orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=carols.order_id), metadata=operator, timeout=10),
        grpc.StatusCode.NOT_FOUND,
    )
