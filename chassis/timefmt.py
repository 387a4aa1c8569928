"""Timestamps as fixed-width UTC strings: exact (microseconds) and sortable in every store."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_time"]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)
