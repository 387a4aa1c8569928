"""Every event still reads its committed golden bytes and JSON, so wire changes fail here."""

from __future__ import annotations

import pytest
from google.protobuf import json_format, unknown_fields
from google.protobuf.message import Message

from tools.golden import GOLDEN_DIR, event_classes, sample

EVENTS = list(event_classes())
IDS = [cls.DESCRIPTOR.full_name for cls in EVENTS]


def test_the_three_public_events_exist() -> None:
    assert {"orders.v1.OrderCreated", "payments.v1.PaymentSuccessful", "payments.v1.PaymentFailed"} <= set(IDS)


@pytest.mark.parametrize("cls", EVENTS, ids=IDS)
def test_every_event_has_a_committed_golden_fixture(cls: type[Message]) -> None:
    name = cls.DESCRIPTOR.full_name
    missing = [p.name for p in (GOLDEN_DIR / f"{name}.binpb", GOLDEN_DIR / f"{name}.json") if not p.exists()]
    assert not missing, f"run `python -m tools.golden` and commit {missing}"


@pytest.mark.parametrize("cls", EVENTS, ids=IDS)
def test_golden_binary_and_json_decode_to_the_same_event(cls: type[Message]) -> None:
    name = cls.DESCRIPTOR.full_name
    from_binary = cls.FromString((GOLDEN_DIR / f"{name}.binpb").read_bytes())
    from_json = json_format.Parse((GOLDEN_DIR / f"{name}.json").read_text(), cls())
    # Unknown fields would mean a field was renumbered or removed.
    assert len(unknown_fields.UnknownFieldSet(from_binary)) == 0
    assert from_binary == from_json


@pytest.mark.parametrize("cls", EVENTS, ids=IDS)
def test_golden_event_round_trips_byte_for_byte(cls: type[Message]) -> None:
    name = cls.DESCRIPTOR.full_name
    raw = (GOLDEN_DIR / f"{name}.binpb").read_bytes()
    assert cls.FromString(raw).SerializeToString(deterministic=True) == raw
    # Every field of today's schema is present in the fixture, so a retyped field cannot hide.
    assert cls.FromString(raw) == sample(cls)


RELEASED = sorted((GOLDEN_DIR / "released").glob("*.binpb"))


@pytest.mark.parametrize("path", RELEASED, ids=[p.stem for p in RELEASED])
def test_an_event_as_an_earlier_release_wrote_it_still_reads_the_same(path: object) -> None:
    """Fixtures of events whose schema has since grown: old producers' bytes must still decode exactly."""
    from pathlib import Path

    assert isinstance(path, Path)
    cls = next(c for c in EVENTS if c.DESCRIPTOR.full_name == path.stem)
    raw = path.read_bytes()
    decoded = cls.FromString(raw)
    assert len(unknown_fields.UnknownFieldSet(decoded)) == 0
    assert decoded.SerializeToString(deterministic=True) == raw
    assert json_format.Parse(path.with_suffix(".json").read_text(), cls()) == decoded
