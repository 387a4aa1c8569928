"""The OrderService servicer: request → use case → response (errors are mapped by the chassis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from orders.v1 import orders_pb2, orders_pb2_grpc

from chassis.errors import FieldViolation, InvalidArgument
from order_svc.convert import draft_from_pb, order_to_pb
from order_svc.usecases import OrderUseCases

__all__ = ["IDEMPOTENCY_KEY", "OrderApi"]

IDEMPOTENCY_KEY = "idempotency-key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
Context = grpc.aio.ServicerContext[Any, Any]


def _idempotency_key(context: Context) -> str:
    key = next((str(v) for k, v in context.invocation_metadata() or () if k == IDEMPOTENCY_KEY), "")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidArgument(
            [FieldViolation(IDEMPOTENCY_KEY, f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")]
        )
    return key


class OrderApi(orders_pb2_grpc.OrderServiceServicer):
    """orders.v1.OrderService over the order use cases."""

    def __init__(self, usecases: OrderUseCases) -> None:
        self._usecases = usecases

    async def CreateOrder(self, request: orders_pb2.CreateOrderRequest, context: Context) -> orders_pb2.Order:
        order = await self._usecases.place(draft_from_pb(request.order), _idempotency_key(context))
        return order_to_pb(order)

    async def GetOrder(self, request: orders_pb2.GetOrderRequest, context: Context) -> orders_pb2.Order:
        return order_to_pb(await self._usecases.get(request.order_id))

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: Context
    ) -> orders_pb2.ListOrdersResponse:
        orders, token = await self._usecases.list(request.customer_id, request.page_size, request.page_token)
        return orders_pb2.ListOrdersResponse(orders=[order_to_pb(o) for o in orders], next_page_token=token)

    async def CancelOrder(self, request: orders_pb2.CancelOrderRequest, context: Context) -> orders_pb2.Order:
        return order_to_pb(await self._usecases.cancel(request.order_id, request.reason))

    async def WatchOrder(
        self, request: orders_pb2.WatchOrderRequest, context: Context
    ) -> AsyncIterator[orders_pb2.Order]:
        async for order in self._usecases.watch(request.order_id):
            yield order_to_pb(order)
