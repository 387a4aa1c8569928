"""The hand-rolled fast paths of ids, times and timestamps give exactly what the standard library gives."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from chassis.convert import timestamp
from chassis.ids import _NAMESPACE, derived_id
from chassis.timefmt import format_time, parse_time


def test_derived_id_is_uuid5_of_the_joined_parts() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        parts = [
            "".join(rng.choice("ab-_é€\x1f0") for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 3))
        ]
        assert derived_id(*parts) == str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def test_format_time_is_the_fixed_width_utc_format_and_parse_time_inverts_it() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        zone = timezone(timedelta(minutes=rng.randint(-720, 720)))
        when = datetime(2026, 1, 1, tzinfo=zone) + timedelta(microseconds=rng.randint(-(10**15), 10**15))
        if rng.random() < 0.2:
            when = when.replace(microsecond=0)
        text = format_time(when)
        assert text == when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert parse_time(text) == when
        assert parse_time(text).tzinfo is UTC


def test_timestamp_matches_from_datetime() -> None:
    rng = random.Random(8)
    for _ in range(2000):
        zone = timezone(timedelta(hours=rng.randint(-12, 12)))
        when = datetime(2026, 1, 1, tzinfo=zone) + timedelta(microseconds=rng.randint(-(6 * 10**16), 10**16))
        expected = Timestamp()
        expected.FromDatetime(when.astimezone(UTC))
        assert timestamp(when) == expected
