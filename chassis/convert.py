"""Conversions of the common protobuf types (google.type.Money, Timestamp) every service uses."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from chassis.money import Money

__all__ = ["money_from_pb", "money_to_pb", "timestamp"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def money_to_pb(money: Money) -> money_pb2.Money:
    return money_pb2.Money(currency_code=money.currency, units=money.units, nanos=money.nanos)


def money_from_pb(money: money_pb2.Money) -> Money:
    return Money.of(money.currency_code, money.units, money.nanos)


def timestamp(when: datetime) -> Timestamp:
    """``when`` as a Timestamp (a naive datetime is taken as local time, as ``astimezone`` does)."""
    since = (when if when.tzinfo is not None else when.astimezone(UTC)) - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)
