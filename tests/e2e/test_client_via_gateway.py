"""The typed client through Envoy's native gRPC route: the same calls, errors and retries as direct."""

from __future__ import annotations

import uuid

import pytest

from orders_client import InvalidOrder, OrderNotFound, OrdersClient, OrderState
from tests.e2e.conftest import System


def target(system: System) -> str:
    return system.url.removeprefix("http://")


async def test_place_watch_and_list_through_the_gateway(system: System) -> None:
    who = f"gw-{uuid.uuid4().hex[:8]}"
    async with OrdersClient(target(system)) as client:
        placed = await client.place_order(who, ["SKU-1:2:12.50"], payment_method="pm_card_declined")
        states = [order.state async for order in client.watch_order(placed)]
        assert states[0] is OrderState.CREATED
        assert states[-1] is OrderState.CANCELLED
        assert [o.order_id async for o in client.list_orders(who)] == [placed.order_id]


async def test_errors_keep_their_details_through_the_gateway(system: System) -> None:
    async with OrdersClient(target(system)) as client:
        with pytest.raises(InvalidOrder) as caught:
            await client.place_order("", ["SKU-1:0:1"])
        assert {v.field for v in caught.value.violations} == {"order.customer_id", "order.line_items[0].quantity"}
        with pytest.raises(OrderNotFound) as missing:
            await client.get_order("no-such-order")
        assert missing.value.reason == "ORDER_NOT_FOUND"
