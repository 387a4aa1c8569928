"""Typed Python client of the order saga: ``OrdersClient`` (async), ``SyncOrdersClient``, results and errors.

Results are frozen dataclasses (``Order`` with its ``RefundState`` and ``OrderStep`` timeline,
``LineItem``, ``Money`` with an exact ``Decimal`` amount), never the generated protobuf messages.
Every error is an ``OrdersError``; see ``orders_client._errors`` for the tree and the gRPC status
each one comes from.
"""

from orders_client._client import DEFAULT_TARGET, OrdersClient
from orders_client._errors import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    InvalidOrder,
    OrderNotCancellable,
    OrderNotFound,
    OrdersError,
    Unavailable,
    Unreachable,
)
from orders_client._models import Actor, LineItem, Money, Order, OrderState, OrderStep, RefundState, StepKind
from orders_client._sync import SyncOrdersClient

__all__ = [
    "DEFAULT_TARGET",
    "Actor",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyConflict",
    "InvalidOrder",
    "LineItem",
    "Money",
    "Order",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrderState",
    "OrderStep",
    "OrdersClient",
    "OrdersError",
    "RefundState",
    "StepKind",
    "SyncOrdersClient",
    "Unavailable",
    "Unreachable",
]
