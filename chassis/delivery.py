"""The delivery policy: what a consumed message becomes (ack, nak with backoff, or a dead letter)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg

from chassis.logging import get_logger

__all__ = [
    "DEAD_LETTER_STREAM",
    "DEAD_LETTER_SUBJECTS",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "MSG_ID_HEADER",
    "Delivery",
    "Dispatch",
    "Envelope",
    "Handler",
    "PermanentError",
    "backoff",
    "dead_letter_subject",
    "num_delivered",
]

log = get_logger(__name__)

DEAD_LETTER_STREAM = "DEAD_LETTERS"
DEAD_LETTER_SUBJECTS = ("dlq.>",)
EVENT_TYPE_HEADER = "Event-Type"
EVENT_ID_HEADER = "Event-Id"
MSG_ID_HEADER = "Nats-Msg-Id"

M = TypeVar("M", bound=Message)


def dead_letter_subject(durable: str) -> str:
    """Where ``durable``'s dead letters are parked (in the ``DEAD_LETTERS`` stream)."""
    return f"dlq.{durable}"


class PermanentError(Exception):
    """A message that can never succeed (undecodable, broken invariant): dead-letter it, don't retry."""


@dataclass(frozen=True)
class Envelope:
    """One delivered event: what the handler of a consumer sees."""

    subject: str
    event_type: str
    event_id: str
    data: bytes
    num_delivered: int
    headers: dict[str, str] = field(default_factory=dict)

    def decode(self, cls: type[M]) -> M:
        """Parse the payload as ``cls``; a mismatch or garbage is a PermanentError."""
        if self.event_type != cls.DESCRIPTOR.full_name:
            raise PermanentError(f"expected {cls.DESCRIPTOR.full_name}, got event type {self.event_type!r}")
        try:
            return cls.FromString(self.data)
        except DecodeError as error:
            raise PermanentError(f"undecodable {self.event_type}: {error}") from error

    def log_consumed(self, **context: str) -> None:
        """The INFO line that lets a reader follow one entity (e.g. ``order_id=...``) through the services."""
        log.info(
            "event consumed",
            event_type=self.event_type,
            event_id=self.event_id,
            attempt=self.num_delivered,
            **context,
        )


Handler = Callable[[Envelope], Awaitable[None]]


class Dispatch:
    """A consumer's handler: decodes each event by its type and calls the function registered for it.

    The registered types are also what the consumer subscribes to (their subjects come from the
    contracts), so the list of events a consumer handles is written once.
    """

    def __init__(self) -> None:
        self._routes: dict[str, tuple[type[Message], Callable[[Any, Envelope], Awaitable[None]]]] = {}

    def on(self, cls: type[M], handle: Callable[[M, Envelope], Awaitable[None]]) -> Dispatch:
        """Call ``handle(event, envelope)`` for every event of type ``cls``."""
        self._routes[cls.DESCRIPTOR.full_name] = (cls, handle)
        return self

    @property
    def events(self) -> list[type[Message]]:
        """The event types this handler takes."""
        return [cls for cls, _ in self._routes.values()]

    async def __call__(self, envelope: Envelope) -> None:
        route = self._routes.get(envelope.event_type)
        if route is None:
            raise PermanentError(f"no handler for event type {envelope.event_type!r}")
        cls, handle = route
        await handle(envelope.decode(cls), envelope)


class Publisher(Protocol):
    """What dead-lettering needs of the bus: a JetStream publish."""

    async def publish(self, subject: str, payload: bytes, *, headers: dict[str, str], timeout: float) -> object: ...


def backoff(num_delivered: int) -> float:
    """Seconds before the next attempt: 0.1 s doubling per attempt, at most 10 s."""
    return float(min(0.1 * 2 ** (num_delivered - 1), 10.0))


def num_delivered(msg: Msg) -> int:
    """The delivery count, read straight from the ack subject (cheaper than parsing all the metadata)."""
    tokens = (getattr(msg, "reply", None) or "").split(".")
    index = 4 if len(tokens) == 9 else 6 if len(tokens) >= 11 else -1
    if index > 0 and tokens[index].isdigit():
        return int(tokens[index]) or 1
    return msg.metadata.num_delivered or 1


class Delivery:
    """Runs the handler on one message and settles it.

    Ack after the handler returns (its effect is saved); ``PermanentError`` → dead letter; any
    other error → ``nak`` with exponential backoff, and a dead letter once ``max_deliver``
    attempts are spent. A dead letter that cannot be published is nakked, never dropped.
    """

    def __init__(
        self, publisher: Callable[[], Publisher], stream: str, durable: str, handler: Handler, max_deliver: int
    ) -> None:
        self._publisher = publisher
        self._stream = stream
        self._durable = durable
        self._handler = handler
        self._max_deliver = max_deliver

    async def handle(self, msg: Msg) -> None:
        """Handle one message and ack, nak or dead-letter it; never raises."""
        headers = msg.headers or {}
        attempt = num_delivered(msg)
        envelope = Envelope(
            subject=msg.subject,
            event_type=headers.get(EVENT_TYPE_HEADER, ""),
            event_id=headers.get(EVENT_ID_HEADER) or headers.get(MSG_ID_HEADER, ""),
            data=msg.data,
            num_delivered=attempt,
            headers=headers,
        )
        try:
            await self._handler(envelope)
        except PermanentError as error:
            await self._dead_letter(msg, envelope, f"permanent: {error}")
            return
        except Exception as error:
            if attempt >= self._max_deliver:
                await self._dead_letter(msg, envelope, f"max_deliver ({self._max_deliver}) exhausted: {error!r}")
                return
            log.warning(
                "handler failed, will retry",
                durable=self._durable,
                subject=msg.subject,
                event_id=envelope.event_id,
                attempt=attempt,
                error=repr(error),
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=backoff(attempt))
            return
        try:
            await msg.ack()
        except Exception as error:  # the effect is saved; a redelivery is harmless (idempotent handlers)
            log.warning("ack failed", event_id=envelope.event_id, error=repr(error))

    async def _dead_letter(self, msg: Msg, envelope: Envelope, reason: str) -> None:
        seq = msg.metadata.sequence.stream
        headers = {
            **envelope.headers,
            MSG_ID_HEADER: f"dlq:{self._stream}:{seq}:{self._durable}",
            "Dlq-Original-Subject": msg.subject,
            "Dlq-Original-Stream": self._stream,
            "Dlq-Original-Sequence": str(seq),
            "Dlq-Consumer": self._durable,
            "Dlq-Reason": reason[:500],
        }
        try:
            await self._publisher().publish(
                dead_letter_subject(self._durable), envelope.data, headers=headers, timeout=5.0
            )
        except Exception as error:  # keep it for later: never drop a message we could not park
            log.warning("dead-letter publish failed, will retry", event_id=envelope.event_id, error=repr(error))
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
            return
        log.error(
            "message dead-lettered",
            durable=self._durable,
            subject=msg.subject,
            event_id=envelope.event_id,
            reason=reason,
        )
        with contextlib.suppress(Exception):
            await msg.term()
