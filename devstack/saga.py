"""Helpers the integration and end-to-end suites share: gRPC stubs of a running stack and saga queries.

Every call to order_svc carries a bearer token: the operator's (``orders:admin``, reads any order)
unless the call passes its own, and a customer's for what only the owner may do (place, cancel).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from notifications.v1 import notifications_pb2, notifications_pb2_grpc
from orders.v1 import orders_pb2, orders_pb2_grpc
from payments.v1 import payments_pb2, payments_pb2_grpc

from devstack.identity import OidcProvider
from devstack.stack import Stack, wait_for

__all__ = ["OPERATOR", "SagaClient", "bearer", "order_request", "saga_client"]

FINAL = {orders_pb2.ORDER_STATE_PAID, orders_pb2.ORDER_STATE_CANCELLED}
#: The subject of the operator token the suites read orders with.
OPERATOR = "saga-operator"
ADMIN_ROLE = "orders:admin"


def bearer(token: str) -> tuple[tuple[str, str]]:
    """GRPC metadata that carries ``token``."""
    return (("authorization", f"Bearer {token}"),)


class _DefaultToken:
    """Adds the operator's token to a call that brings none of its own."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer(token)

    def _with_token(self, details: Any) -> Any:
        metadata = list(details.metadata or ())
        if any(key == "authorization" for key, _ in metadata):
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata, *self._metadata),
            details.credentials,
            details.wait_for_ready,
        )


class _DefaultTokenUnary(_DefaultToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _DefaultTokenStream(_DefaultToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    # grpc.aio files an interceptor under one kind only, so each kind gets its own.
    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


def order_request(
    payment_method: str = "pm_card_visa", customer_id: str = "alice", quantity: int = 2
) -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        order=orders_pb2.Order(
            customer_id=customer_id,
            payment_method=payment_method,
            line_items=[
                orders_pb2.LineItem(
                    sku="SKU-1",
                    quantity=quantity,
                    unit_price={"currency_code": "USD", "units": 12, "nanos": 500_000_000},
                )
            ],
        )
    )


@dataclass
class SagaClient:
    """Stubs of the three services, plus queries the saga tests ask again and again."""

    orders: orders_pb2_grpc.OrderServiceAsyncStub
    payments: payments_pb2_grpc.PaymentServiceAsyncStub
    notifications: notifications_pb2_grpc.NotificationServiceAsyncStub
    stack: Stack

    def as_customer(self, customer_id: str) -> tuple[tuple[str, str]]:
        """Metadata that signs a call in as ``customer_id`` (tokens are cached per customer)."""
        return bearer(_token(self.stack, customer_id))

    async def create(
        self, payment_method: str = "pm_card_visa", *, key: str = "", customer_id: str = "alice"
    ) -> orders_pb2.Order:
        metadata = (*self.as_customer(customer_id), *((("idempotency-key", key),) if key else ()))
        return await self.orders.CreateOrder(order_request(payment_method, customer_id), metadata=metadata, timeout=10)

    async def cancel(self, order_id: str, reason: str = "", *, customer_id: str = "alice") -> orders_pb2.Order:
        """Cancel as the order's customer (only the owner may)."""
        request = orders_pb2.CancelOrderRequest(order_id=order_id, reason=reason)
        return await self.orders.CancelOrder(request, metadata=self.as_customer(customer_id), timeout=10)

    async def get_all(self, order_ids: Sequence[str]) -> list[orders_pb2.Order]:
        return list(
            await asyncio.gather(
                *(self.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=i), timeout=10) for i in order_ids)
            )
        )

    async def wait_final(self, order_ids: Sequence[str], timeout: float = 60.0) -> list[orders_pb2.Order]:
        async def all_final() -> list[orders_pb2.Order]:
            orders = await self.get_all(order_ids)
            return orders if all(o.state in FINAL for o in orders) else []

        return await wait_for(all_final, timeout=timeout, interval=0.1, what=f"{len(order_ids)} orders to finish")

    async def all_payments(self, customer_id: str = "") -> list[payments_pb2.Payment]:
        found: list[payments_pb2.Payment] = []
        token = ""
        while True:
            page = await self.payments.ListPayments(
                payments_pb2.ListPaymentsRequest(customer_id=customer_id, page_size=500, page_token=token), timeout=10
            )
            found.extend(page.payments)
            token = page.next_page_token
            if not token:
                return found

    async def all_notifications(
        self, customer_id: str = "", order_id: str = ""
    ) -> list[notifications_pb2.Notification]:
        found: list[notifications_pb2.Notification] = []
        token = ""
        while True:
            page = await self.notifications.ListNotifications(
                notifications_pb2.ListNotificationsRequest(
                    customer_id=customer_id, order_id=order_id, page_size=500, page_token=token
                ),
                timeout=10,
            )
            found.extend(page.notifications)
            token = page.next_page_token
            if not token:
                return found

    async def wait_notified(
        self, order_ids: Sequence[str], timeout: float = 60.0
    ) -> list[notifications_pb2.Notification]:
        wanted = set(order_ids)

        async def everyone_notified() -> list[notifications_pb2.Notification]:
            notes = [n for n in await self.all_notifications() if n.order_id in wanted]
            return notes if {n.order_id for n in notes} == wanted else []

        return await wait_for(everyone_notified, timeout=timeout, interval=0.1, what="notifications")


#: Per provider process (a new one has new keys): keyed by the provider object itself, not its id(),
#: which a later provider may be given once the first is garbage-collected.
_TOKENS: weakref.WeakKeyDictionary[OidcProvider, dict[tuple[str, tuple[str, ...]], str]] = weakref.WeakKeyDictionary()


def _token(stack: Stack, customer_id: str, roles: Sequence[str] = ()) -> str:
    tokens = _TOKENS.setdefault(stack.identity, {})
    key = (customer_id, tuple(roles))
    if key not in tokens:
        tokens[key] = stack.token(customer_id, roles)
    return tokens[key]


@asynccontextmanager
async def saga_client(stack: Stack) -> AsyncIterator[SagaClient]:
    """Stubs of the stack's services; order_svc calls carry the operator's token unless they bring one."""
    operator = _token(stack, OPERATOR, [ADMIN_ROLE])
    with_token: Any = [_DefaultTokenUnary(operator), _DefaultTokenStream(operator)]
    async with (
        grpc.aio.insecure_channel(stack.order.target, interceptors=with_token) as orders,
        grpc.aio.insecure_channel(stack.payment.target) as payments,
        grpc.aio.insecure_channel(stack.notification.target) as notifications,
    ):
        yield SagaClient(
            orders_pb2_grpc.OrderServiceStub(orders),
            payments_pb2_grpc.PaymentServiceStub(payments),
            notifications_pb2_grpc.NotificationServiceStub(notifications),
            stack,
        )
