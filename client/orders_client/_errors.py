"""The client's exception tree, mapped from gRPC status codes and their google.rpc details.

::

    OrdersError                       every error the client raises (code, message, reason)
    ├── InvalidOrder                  INVALID_ARGUMENT; .violations lists every bad field
    ├── OrderNotFound                 NOT_FOUND; .resource_name
    ├── FailedPrecondition            FAILED_PRECONDITION; .violations
    │   └── OrderNotCancellable       reason ORDER_NOT_CANCELLABLE (the order is already final)
    ├── IdempotencyConflict           ALREADY_EXISTS; the key was first used for a different order
    ├── NotAuthenticated              UNAUTHENTICATED; no token, or the service refused it (expired, wrong issuer...)
    ├── PermissionDenied              PERMISSION_DENIED; signed in, but not allowed (reason e.g. CUSTOMER_MISMATCH)
    ├── Unavailable                   UNAVAILABLE; the service cannot be reached (transient)
    │   └── Unreachable               no connection to the target at all on first contact (not retried)
    └── DeadlineExceeded              DEADLINE_EXCEEDED, or a client-side deadline ran out (also a TimeoutError)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyConflict",
    "InvalidOrder",
    "NotAuthenticated",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrdersError",
    "PermissionDenied",
    "Unavailable",
    "Unreachable",
    "from_rpc_error",
    "from_status",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. ``order.line_items[0].quantity``) and what is wrong."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class OrdersError(Exception):
    """Base of every error the client raises; also raised as-is for status codes without a subclass.

    ``code`` is the gRPC status code (None for client-side errors), ``message`` the server's
    message and ``reason`` the stable ``google.rpc.ErrorInfo`` reason (e.g. ``ORDER_NOT_FOUND``), or "".
    """

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class InvalidOrder(OrdersError):
    """The request has bad fields; ``violations`` lists every one (from ``google.rpc.BadRequest``).

    ``str(error)`` names every field; ``message`` is the service's summary alone.
    """

    def __init__(
        self,
        message: str,
        violations: Sequence[FieldViolation] = (),
        *,
        code: grpc.StatusCode | None = grpc.StatusCode.INVALID_ARGUMENT,
        reason: str = "",
    ) -> None:
        self.violations = tuple(violations)
        text = "; ".join(str(v) for v in self.violations)
        super().__init__(f"{message}: {text}" if text else message, code=code, reason=reason)
        self.message = message


class OrderNotFound(OrdersError):
    """No order has this id; ``resource_name`` is ``orders/{id}`` when the server said so."""

    def __init__(self, message: str, *, resource_name: str = "", reason: str = "") -> None:
        super().__init__(message, code=grpc.StatusCode.NOT_FOUND, reason=reason)
        self.resource_name = resource_name


class FailedPrecondition(OrdersError):
    """The order is not in a state that allows the operation; ``violations`` from ``PreconditionFailure``."""

    def __init__(self, message: str, violations: Sequence[str] = (), *, reason: str = "") -> None:
        super().__init__(message, code=grpc.StatusCode.FAILED_PRECONDITION, reason=reason)
        self.violations = tuple(violations)


class OrderNotCancellable(FailedPrecondition):
    """Only an order in state CREATED can be cancelled."""


class IdempotencyConflict(OrdersError):
    """The idempotency key was already used for a different request (ALREADY_EXISTS)."""


class NotAuthenticated(OrdersError):
    """The service does not know who is asking (UNAUTHENTICATED); never retried.

    No token was sent, or the one sent was refused: expired, not signed by the identity provider
    the service trusts (e.g. one from an earlier run of the development provider), meant for
    another audience, or not a JWT at all. ``message`` is the service's reason.
    """

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message, code=grpc.StatusCode.UNAUTHENTICATED, reason=reason)


class PermissionDenied(OrdersError):
    """The caller is signed in but may not do this (PERMISSION_DENIED); never retried.

    E.g. an order placed, or a list asked for, in another customer's name: ``reason`` is the
    ``google.rpc.ErrorInfo`` reason (``CUSTOMER_MISMATCH``). Another customer's *order* is
    :class:`OrderNotFound` instead, exactly like an unknown id.
    """

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message, code=grpc.StatusCode.PERMISSION_DENIED, reason=reason)


class Unavailable(OrdersError):
    """The service could not be reached (transient: worth retrying later)."""


class Unreachable(Unavailable):
    """No connection to ``target`` on first contact (nothing listens there, wrong host or port); never retried.

    Raised once the client's ``connect_timeout`` has passed without a connection; ``target`` is the address tried.
    """

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message, code=grpc.StatusCode.UNAVAILABLE)
        self.target = target


class DeadlineExceeded(OrdersError, TimeoutError):
    """A deadline ran out: the server's (DEADLINE_EXCEEDED) or the client's own overall deadline."""


def _details(status: status_pb2.Status) -> tuple[str, list[FieldViolation], list[str], str]:
    reason, resource = "", ""
    fields: list[FieldViolation] = []
    preconditions: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            preconditions.extend(v.description for v in failure.violations)
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            info_r = error_details_pb2.ResourceInfo()
            detail.Unpack(info_r)
            resource = info_r.resource_name
    return reason, fields, preconditions, resource


def from_status(code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None) -> OrdersError:
    """The exception for a gRPC status code, its message and its optional rich ``google.rpc.Status``."""
    reason, fields, preconditions, resource = _details(status) if status is not None else ("", [], [], "")
    message = message or code.name
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidOrder(message, fields, reason=reason)
    if code is grpc.StatusCode.NOT_FOUND:
        return OrderNotFound(message, resource_name=resource, reason=reason)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        kind = OrderNotCancellable if reason == "ORDER_NOT_CANCELLABLE" else FailedPrecondition
        return kind(message, preconditions, reason=reason)
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return IdempotencyConflict(message, code=code, reason=reason)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return NotAuthenticated(message, reason=reason)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(message, reason=reason)
    if code is grpc.StatusCode.UNAVAILABLE:
        return Unavailable(message, code=code, reason=reason)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message, code=code, reason=reason)
    return OrdersError(message, code=code, reason=reason)


def rich_status(metadata: Sequence[tuple[str, str | bytes]] | None) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a server put in the trailing metadata, if any and if it decodes."""
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def from_rpc_error(error: grpc.aio.AioRpcError) -> OrdersError:
    """Map a failed ``grpc.aio`` call to the client's exception (rich details when the server sent them)."""
    # grpc.aio.Metadata iterates as (key, value) pairs; the stubs describe the sync API's tuple instead.
    trailing: Any = error.trailing_metadata()
    status = rich_status([(str(key), value) for key, value in trailing] if trailing is not None else None)
    return from_status(error.code(), error.details() or "", status)
