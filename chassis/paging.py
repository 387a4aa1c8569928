"""AIP-158 pagination: page sizes and opaque page tokens for every List method."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chassis.errors import FieldViolation, InvalidArgument

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Cursor",
    "decode_token",
    "encode_token",
    "fetch_page",
    "page_size",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    """0 means the default; above the maximum is clamped; negative is invalid."""
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(cursor: dict[str, Any]) -> str:
    """An opaque token for the page after ``cursor``."""
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, *, expected_keys: set[str]) -> dict[str, Any] | None:
    """The cursor inside ``token`` (None for the first page); a forged or foreign token is invalid."""
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as error:
        raise InvalidArgument([FieldViolation("page_token", "is not a token this API issued")]) from error
    if not isinstance(cursor, dict) or set(cursor) != expected_keys:
        raise InvalidArgument([FieldViolation("page_token", "is not a token this API issued")])
    return cursor


Cursor = tuple[str, str]
"""(create_time, id) of the last item of a page: the next page starts after it (keyset paging)."""

T = TypeVar("T")


async def fetch_page(
    fetch: Callable[[int, Cursor | None], Awaitable[list[T]]],
    *,
    size: int,
    token: str,
    scope: str,
    cursor_of: Callable[[T], Cursor],
) -> tuple[list[T], str]:
    """One page newest first, and the token of the next ('' on the last page).

    ``scope`` names the filters of the request; a token minted under other filters is refused.
    """
    limit = page_size(size)
    cursor = decode_token(token, expected_keys={"t", "id", "s"})
    if cursor is not None and cursor["s"] != scope:
        raise InvalidArgument([FieldViolation("page_token", "was issued for a request with other filters")])
    after = None if cursor is None else (str(cursor["t"]), str(cursor["id"]))
    items = await fetch(limit + 1, after)
    if len(items) <= limit:
        return items, ""
    last_time, last_id = cursor_of(items[limit - 1])
    return items[:limit], encode_token({"t": last_time, "id": last_id, "s": scope})
