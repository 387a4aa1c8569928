"""Identifiers and clocks, injected into domain code so it stays pure and testable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

__all__ = ["derived_id", "new_id", "utc_now"]

_NAMESPACE = uuid.UUID("6f6a2b1e-4a0c-4d8b-9a57-0b7c1e2f3a4d")


def new_id() -> str:
    """A fresh random id."""
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    """The same id for the same parts, every time (idempotency keys, per-order events)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def utc_now() -> datetime:
    return datetime.now(UTC)
