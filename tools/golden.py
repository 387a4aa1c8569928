"""Golden fixtures of every event message: written once, then only ever read by the contract tests.

``python -m tools.golden`` writes a fixture for each event that has none yet; existing
fixtures are never overwritten (that would defeat their purpose).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["EVENT_MODULES", "GOLDEN_DIR", "event_classes", "sample"]

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "tests" / "contract" / "golden"
# Every proto file named events.proto holds only event messages.
EVENT_MODULES = tuple(
    f"{path.parent.relative_to(ROOT / 'proto').as_posix().replace('/', '.')}.events_pb2"
    for path in sorted((ROOT / "proto").rglob("events.proto"))
)


def event_classes() -> Iterator[type[Message]]:
    """Yield the generated class of every event message."""
    for module_name in EVENT_MODULES:
        module = importlib.import_module(module_name)
        for name in module.DESCRIPTOR.message_types_by_name:
            cls: type[Message] = getattr(module, name)
            yield cls


def _fill(message: Message, descriptor: Descriptor, depth: int = 0) -> None:
    for field in descriptor.fields:
        repeats = 2 if field.is_repeated else 1
        for i in range(repeats):
            value: object
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                assert field.message_type is not None
                target = getattr(message, field.name)
                child = target.add() if repeats > 1 else target
                if field.message_type.full_name == "google.protobuf.Timestamp":
                    child.FromSeconds(1_700_000_000 + field.number)
                elif depth < 3:
                    _fill(child, field.message_type, depth + 1)
                continue
            if field.type == FieldDescriptor.TYPE_STRING:
                value = f"{field.name}-{i + 1}"
            elif field.type == FieldDescriptor.TYPE_ENUM:
                assert field.enum_type is not None
                value = field.enum_type.values[-1].number
            elif field.type == FieldDescriptor.TYPE_BOOL:
                value = True
            elif field.type == FieldDescriptor.TYPE_BYTES:
                value = field.name.encode()
            else:
                value = field.number * 7 + i
            if repeats > 1:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)


def sample(cls: type[Message]) -> Message:
    """A message of ``cls`` with every field set to a deterministic, non-default value."""
    message = cls()
    _fill(message, cast(Descriptor, message.DESCRIPTOR))
    return message


def main() -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for cls in event_classes():
        name = cls.DESCRIPTOR.full_name
        binary, as_json = GOLDEN_DIR / f"{name}.binpb", GOLDEN_DIR / f"{name}.json"
        if binary.exists() or as_json.exists():
            continue
        message = sample(cls)
        binary.write_bytes(message.SerializeToString(deterministic=True))
        as_json.write_text(json_format.MessageToJson(message, indent=2, sort_keys=True) + "\n")
        print(f"wrote {binary.name} and {as_json.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
