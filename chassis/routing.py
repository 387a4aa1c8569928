"""Where events travel: streams and subjects, read from the contracts' ``messaging.v1`` options."""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from messaging.v1 import routing_pb2

__all__ = ["StreamSpec", "durable_name", "stream_of", "subject_filter", "subject_of", "subject_template", "subjects_of"]


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its name and the subjects it captures."""

    name: str
    subjects: tuple[str, ...]


@functools.cache
def _stream(descriptor: Descriptor) -> StreamSpec:
    options = descriptor.file.GetOptions()
    if not options.HasExtension(routing_pb2.stream):
        raise LookupError(f"{descriptor.file.name} declares no (messaging.v1.stream) option")
    declared = options.Extensions[routing_pb2.stream]
    return StreamSpec(declared.name, tuple(declared.subjects))


@functools.cache
def _template(descriptor: Descriptor) -> tuple[str, tuple[str, ...]]:
    options = descriptor.GetOptions()
    if not options.HasExtension(routing_pb2.subject):
        raise LookupError(f"{descriptor.full_name} declares no (messaging.v1.subject) option")
    template = options.Extensions[routing_pb2.subject]
    fields = tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)
    return template, fields


def stream_of(event: type[Message] | Message) -> StreamSpec:
    """The stream that the file declaring ``event`` owns."""
    return _stream(event.DESCRIPTOR)


def subject_template(event: type[Message] | Message) -> str:
    """The subject as the contract declares it, placeholders included (e.g. ``orders.changed.{order_id}``)."""
    return _template(event.DESCRIPTOR)[0]


def subject_of(event: Message) -> str:
    """The subject this event is published on, its placeholders filled from its fields."""
    template, fields = _template(event.DESCRIPTOR)
    if not fields:
        return template
    return template.format(**{name: getattr(event, name) for name in fields})


def subject_filter(event: type[Message] | Message) -> str:
    """The subject filter that matches every event of this type (placeholders become ``*``)."""
    template, fields = _template(event.DESCRIPTOR)
    return template.format(**dict.fromkeys(fields, "*"))


def subjects_of(events: Sequence[type[Message]]) -> tuple[StreamSpec, list[str]]:
    """The one stream these event types travel on, and the subject filters a consumer of them needs."""
    streams = {stream_of(event) for event in events}
    if len(streams) != 1:
        names = sorted(s.name for s in streams)
        raise ValueError(f"a consumer reads one stream; these events travel on {names or 'none'}")
    return streams.pop(), [subject_filter(event) for event in events]


def durable_name(service: str, stream: StreamSpec) -> str:
    """The durable consumer ``service`` reads ``stream`` with: ``<service>-<stream>``, lower case, dashes.

    E.g. ``order-svc-payments``. One rule, so the NATS permissions that grant a service its own
    durables (``devstack.natsauth``) name the same consumers the service creates.
    """
    return f"{service}-{stream.name}".replace("_", "-").lower()
