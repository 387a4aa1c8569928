"""The PaymentService servicer (internal): request → use case → response."""

from __future__ import annotations

from typing import Any

import grpc
from payments.v1 import payments_pb2, payments_pb2_grpc

from payment_svc.convert import payment_to_pb
from payment_svc.usecases import PaymentUseCases

__all__ = ["PaymentApi"]

Context = grpc.aio.ServicerContext[Any, Any]


class PaymentApi(payments_pb2_grpc.PaymentServiceServicer):
    """payments.v1.PaymentService over the payment use cases."""

    def __init__(self, usecases: PaymentUseCases) -> None:
        self._usecases = usecases

    async def GetPayment(self, request: payments_pb2.GetPaymentRequest, context: Context) -> payments_pb2.Payment:
        return payment_to_pb(await self._usecases.get(request.order_id))

    async def ListPayments(
        self, request: payments_pb2.ListPaymentsRequest, context: Context
    ) -> payments_pb2.ListPaymentsResponse:
        payments, token = await self._usecases.list(request.customer_id, request.page_size, request.page_token)
        return payments_pb2.ListPaymentsResponse(payments=[payment_to_pb(p) for p in payments], next_page_token=token)
