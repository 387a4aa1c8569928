"""The OrderService servicer: request → use case → response (errors are mapped by the chassis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from orders.v1 import orders_pb2, orders_pb2_grpc

from chassis.auth import TokenVerifier, bearer_token
from chassis.errors import FieldViolation, InvalidArgument, Unauthenticated
from order_svc.convert import draft_from_pb, order_to_pb
from order_svc.domain import Caller
from order_svc.usecases import OrderUseCases

__all__ = ["AUTHORIZATION", "IDEMPOTENCY_KEY", "Authenticator", "OrderApi"]

IDEMPOTENCY_KEY = "idempotency-key"
AUTHORIZATION = "authorization"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
Context = grpc.aio.ServicerContext[Any, Any]


def _idempotency_key(context: Context) -> str:
    key = next((str(v) for k, v in context.invocation_metadata() or () if k == IDEMPOTENCY_KEY), "")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidArgument(
            [FieldViolation(IDEMPOTENCY_KEY, f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")]
        )
    return key


class Authenticator:
    """The caller of an RPC, from the bearer token in its ``authorization`` metadata, verified here.

    No header is trusted: whoever reaches this port directly must still present a token the
    identity provider signed. ``verifier=None`` switches checking off (benchmark baseline only).
    """

    def __init__(self, verifier: TokenVerifier | None, admin_role: str) -> None:
        self._verifier = verifier
        self._admin_role = admin_role

    async def caller(self, context: Context) -> Caller:
        if self._verifier is None:
            return Caller.anyone()
        values = [str(v) for k, v in context.invocation_metadata() or () if k == AUTHORIZATION]
        if len(values) != 1:
            raise Unauthenticated("exactly one bearer token is required (authorization: Bearer <token>)")
        identity = await self._verifier.verify(bearer_token(values[0]))
        return Caller(identity.subject, operator=identity.has_role(self._admin_role))


class OrderApi(orders_pb2_grpc.OrderServiceServicer):
    """orders.v1.OrderService over the order use cases; every method first knows who is asking."""

    def __init__(self, usecases: OrderUseCases, auth: Authenticator) -> None:
        self._usecases = usecases
        self._auth = auth

    async def CreateOrder(self, request: orders_pb2.CreateOrderRequest, context: Context) -> orders_pb2.Order:
        caller = await self._auth.caller(context)
        order = await self._usecases.place(draft_from_pb(request.order), _idempotency_key(context), caller)
        return order_to_pb(order)

    async def GetOrder(self, request: orders_pb2.GetOrderRequest, context: Context) -> orders_pb2.Order:
        return order_to_pb(await self._usecases.get(request.order_id, await self._auth.caller(context)))

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: Context
    ) -> orders_pb2.ListOrdersResponse:
        caller = await self._auth.caller(context)
        orders, token = await self._usecases.list(request.customer_id, request.page_size, request.page_token, caller)
        return orders_pb2.ListOrdersResponse(orders=[order_to_pb(o) for o in orders], next_page_token=token)

    async def CancelOrder(self, request: orders_pb2.CancelOrderRequest, context: Context) -> orders_pb2.Order:
        caller = await self._auth.caller(context)
        return order_to_pb(await self._usecases.cancel(request.order_id, request.reason, caller))

    async def WatchOrder(
        self, request: orders_pb2.WatchOrderRequest, context: Context
    ) -> AsyncIterator[orders_pb2.Order]:
        caller = await self._auth.caller(context)
        async for order in self._usecases.watch(request.order_id, caller):
            yield order_to_pb(order)
