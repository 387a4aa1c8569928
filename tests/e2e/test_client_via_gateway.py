"""The typed client through Envoy's native gRPC route: the same calls, errors and retries as direct, with tokens."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from orders_client import InvalidOrder, NotAuthenticated, OrderNotFound, OrdersClient, OrderState, PermissionDenied
from tests.e2e.conftest import System, TokenFor


def target(system: System) -> str:
    return system.url.removeprefix("http://")


@pytest.fixture
async def client(system: System, customer: str, token: TokenFor) -> OrdersClient:
    """A client of the gateway's gRPC listener, signed in as this test's customer."""
    return OrdersClient(target(system), token=await asyncio.to_thread(token, customer))


async def test_place_watch_and_list_through_the_gateway(client: OrdersClient, customer: str) -> None:
    async with client:
        placed = await client.place_order("", ["SKU-1:2:12.50"], payment_method="pm_card_declined")
        assert placed.customer_id == customer
        states = [order.state async for order in client.watch_order(placed)]
        assert states[0] is OrderState.CREATED
        assert states[-1] is OrderState.CANCELLED
        assert [o.order_id async for o in client.list_orders()] == [placed.order_id]


async def test_errors_keep_their_details_through_the_gateway(client: OrdersClient) -> None:
    async with client:
        with pytest.raises(InvalidOrder) as caught:
            await client.place_order("", ["SKU-1:0:1"], payment_method="pm_bogus")
        assert {v.field for v in caught.value.violations} == {"order.payment_method", "order.line_items[0].quantity"}
        with pytest.raises(OrderNotFound) as missing:
            await client.get_order(str(uuid.uuid4()))
        assert missing.value.reason == "ORDER_NOT_FOUND"
        with pytest.raises(PermissionDenied) as denied:
            await client.place_order("someone-else", ["SKU-1:1:1"])
        assert denied.value.reason == "CUSTOMER_MISMATCH"


async def test_no_token_or_a_forged_one_is_not_authenticated_through_the_gateway(
    system: System, customer: str, token: TokenFor
) -> None:
    async with OrdersClient(target(system), token="") as client:
        with pytest.raises(NotAuthenticated):
            await client.get_order("no-such-order")
    header, payload, signature = (await asyncio.to_thread(token, customer)).split(".")
    async with OrdersClient(target(system), token=f"{header}.{payload}.{signature[::-1]}") as client:
        with pytest.raises(NotAuthenticated):
            _ = [o async for o in client.watch_order("no-such-order")]
