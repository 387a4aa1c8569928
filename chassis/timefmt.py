"""Timestamps as fixed-width UTC strings: exact (microseconds) and sortable in every store."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_time"]


def format_time(when: datetime) -> str:
    """``%Y-%m-%dT%H:%M:%S.%fZ`` (always six fraction digits), by the faster isoformat."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """The inverse of ``format_time`` (fromisoformat reads the trailing Z since Python 3.11)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
