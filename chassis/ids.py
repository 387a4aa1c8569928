"""Identifiers and clocks, injected into domain code so it stays pure and testable."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

__all__ = ["derived_id", "new_id", "utc_now"]

_NAMESPACE = uuid.UUID("6f6a2b1e-4a0c-4d8b-9a57-0b7c1e2f3a4d")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def new_id() -> str:
    """A fresh random id."""
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    """The same id for the same parts, every time (idempotency keys, per-order events).

    Exactly ``uuid5(_NAMESPACE, parts joined by U+001F)`` as a string, computed without UUID objects.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_now() -> datetime:
    return datetime.now(UTC)
