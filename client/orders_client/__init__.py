"""Typed Python client of the order saga: ``OrdersClient`` (async), ``SyncOrdersClient``, results and errors.

Results are frozen dataclasses (``Order`` with its ``RefundState`` and ``OrderStep`` timeline,
``LineItem``, ``Money`` with an exact ``Decimal`` amount), never the generated protobuf messages.
Every error is an ``OrdersError``; see ``orders_client._errors`` for the tree and the gRPC status
each one comes from.

Every call carries a bearer token (``token=`` a JWT or a callable that supplies one per call, else
``$ORDERS_TOKEN``): the service answers only to a signed-in customer, about their own orders.
A missing or refused token raises ``NotAuthenticated``; another customer's name ``PermissionDenied``.
"""

from orders_client._auth import TOKEN_ENV, Token, TokenSource
from orders_client._client import DEFAULT_TARGET, OrdersClient
from orders_client._errors import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    InvalidOrder,
    NotAuthenticated,
    OrderNotCancellable,
    OrderNotFound,
    OrdersError,
    PermissionDenied,
    Unavailable,
    Unreachable,
)
from orders_client._models import Actor, LineItem, Money, Order, OrderState, OrderStep, RefundState, StepKind
from orders_client._sync import SyncOrdersClient

__all__ = [
    "DEFAULT_TARGET",
    "TOKEN_ENV",
    "Actor",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyConflict",
    "InvalidOrder",
    "LineItem",
    "Money",
    "NotAuthenticated",
    "Order",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrderState",
    "OrderStep",
    "OrdersClient",
    "OrdersError",
    "PermissionDenied",
    "RefundState",
    "StepKind",
    "SyncOrdersClient",
    "Token",
    "TokenSource",
    "Unavailable",
    "Unreachable",
]
