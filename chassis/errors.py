"""Domain error kinds every service raises; pure (no I/O, no gRPC) so domain code may use them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "Unauthenticated",
]


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. ``order.line_items[0].quantity``) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a use case reports to its caller; ``reason`` is a stable UPPER_SNAKE code."""

    reason: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """The request is malformed; ``violations`` lists every bad field.

    The message names each of them too (``field: description; ...``), so that a person reading only the
    message (a ``google.rpc.Status`` JSON body, a log line) knows what to fix.
    """

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], message: str = "") -> None:
        self.violations = tuple(violations)
        super().__init__(
            message or "; ".join(f"{v.field}: {v.description}" for v in self.violations) or "the request is invalid"
        )


class NotFound(DomainError):
    """The named resource does not exist."""

    reason = "NOT_FOUND"

    def __init__(self, resource_type: str, resource_name: str) -> None:
        super().__init__(f"{resource_name} not found")
        self.resource_type = resource_type
        self.resource_name = resource_name


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows the operation."""

    reason = "FAILED_PRECONDITION"


class AlreadyExists(DomainError):
    """The request conflicts with what already exists (e.g. a reused idempotency key)."""

    reason = "ALREADY_EXISTS"


class Unauthenticated(DomainError):
    """No valid credentials came with the request (missing, expired, badly signed, wrong issuer...)."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller is known but may not do this (e.g. act in another customer's name)."""

    reason = "PERMISSION_DENIED"
