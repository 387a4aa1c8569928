"""Helpers the integration and end-to-end suites share: gRPC stubs of a running stack and saga queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from notifications.v1 import notifications_pb2, notifications_pb2_grpc
from orders.v1 import orders_pb2, orders_pb2_grpc
from payments.v1 import payments_pb2, payments_pb2_grpc

from devstack.stack import Stack, wait_for

__all__ = ["SagaClient", "order_request", "saga_client"]

FINAL = {orders_pb2.ORDER_STATE_PAID, orders_pb2.ORDER_STATE_CANCELLED}


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

    async def create(
        self, payment_method: str = "pm_card_visa", *, key: str = "", customer_id: str = "alice"
    ) -> orders_pb2.Order:
        metadata = (("idempotency-key", key),) if key else None
        return await self.orders.CreateOrder(order_request(payment_method, customer_id), metadata=metadata, timeout=10)

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


@asynccontextmanager
async def saga_client(stack: Stack) -> AsyncIterator[SagaClient]:
    async with (
        grpc.aio.insecure_channel(stack.order.target) as orders,
        grpc.aio.insecure_channel(stack.payment.target) as payments,
        grpc.aio.insecure_channel(stack.notification.target) as notifications,
    ):
        yield SagaClient(
            orders_pb2_grpc.OrderServiceStub(orders),
            payments_pb2_grpc.PaymentServiceStub(payments),
            notifications_pb2_grpc.NotificationServiceStub(notifications),
        )
