"""The event bus: JetStream streams, publishing with dedup ids, and the durable pull-consumer policy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from chassis.logging import get_logger

__all__ = [
    "DEAD_LETTER_STREAM",
    "STREAMS",
    "Bus",
    "Consumer",
    "Envelope",
    "PermanentError",
]

log = get_logger(__name__)

# Stream name → the subjects it captures. Every service declares all of them, idempotently.
STREAMS: dict[str, list[str]] = {
    "ORDERS": ["orders.>"],
    "PAYMENTS": ["payments.>"],
    "DEAD_LETTERS": ["dlq.>"],
}
DEAD_LETTER_STREAM = "DEAD_LETTERS"
DUPLICATE_WINDOW_SECONDS = 120.0
STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600.0
EVENT_TYPE_HEADER = "Event-Type"
EVENT_ID_HEADER = "Event-Id"
MSG_ID_HEADER = "Nats-Msg-Id"

M = TypeVar("M", bound=Message)


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


Handler = Callable[[Envelope], Awaitable[None]]


def _backoff(num_delivered: int) -> float:
    return float(min(0.1 * 2 ** (num_delivered - 1), 10.0))


class Bus:
    """One NATS connection with JetStream; connects with retries so a service may start before NATS."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self.connected = asyncio.Event()

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus is not connected")
        return self._js

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise RuntimeError("bus is not connected")
        return self._nc

    async def connect(self) -> None:
        """Connect (retrying until NATS answers) and declare the streams."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type((OSError, nats.errors.Error, asyncio.TimeoutError)),
            before_sleep=lambda state: log.warning("nats not reachable, retrying", url=self._url),
        ):
            with attempt:
                self._nc = await nats.connect(
                    self._url,
                    name=self._name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        self._js = self.nc.jetstream()
        await self.ensure_streams()
        self.connected.set()
        log.info("nats connected", url=self._url)

    async def _on_error(self, error: Exception) -> None:
        log.warning("nats error", error=repr(error))

    async def _on_disconnected(self) -> None:
        log.warning("nats disconnected")

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected")

    async def ensure_streams(self) -> None:
        """Create or update every stream: file storage, a dedup window, bounded age."""
        for name, subjects in STREAMS.items():
            config = api.StreamConfig(
                name=name,
                subjects=subjects,
                storage=api.StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=STREAM_MAX_AGE_SECONDS,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(config)

    async def publish(self, subject: str, payload: bytes, *, event_id: str, event_type: str) -> api.PubAck:
        """Publish with ``Nats-Msg-Id`` = ``event_id`` so JetStream drops a repeat inside its window."""
        return await self.js.publish(
            subject,
            payload,
            timeout=5.0,
            headers={MSG_ID_HEADER: event_id, EVENT_ID_HEADER: event_id, EVENT_TYPE_HEADER: event_type},
        )

    def consumer(
        self,
        *,
        stream: str,
        durable: str,
        subjects: Sequence[str],
        handler: Handler,
        max_deliver: int = 5,
        batch: int = 128,
    ) -> Consumer:
        """A durable pull consumer that replicas of one service share."""
        return Consumer(self, stream, durable, list(subjects), handler, max_deliver, batch)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            await self._nc.close()


class Consumer:
    """Fetches batches and runs the handler on each message.

    Policy: ack after the handler returns (its effect is saved); ``PermanentError`` → dead-letter;
    any other error → ``nak`` with exponential backoff, and dead-letter once ``max_deliver``
    attempts are spent. JetStream itself redelivers forever, so a crash never loses a message.
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        durable: str,
        subjects: list[str],
        handler: Handler,
        max_deliver: int,
        batch: int,
    ) -> None:
        self._bus = bus
        self._stream = stream
        self._durable = durable
        self._subjects = subjects
        self._handler = handler
        self._max_deliver = max_deliver
        self._batch = batch
        self._stopping = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        config = api.ConsumerConfig(
            durable_name=self._durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=-1,
            max_ack_pending=10_000,
            filter_subjects=self._subjects if len(self._subjects) > 1 else None,
            filter_subject=self._subjects[0] if len(self._subjects) == 1 else None,
        )
        return await self._bus.js.pull_subscribe(
            self._subjects[0], durable=self._durable, stream=self._stream, config=config
        )

    async def run(self) -> None:
        """Consume until ``stop()``; finishes the batch in hand before returning."""
        await self._bus.connected.wait()
        while not self._stopping.is_set():
            try:
                self._sub = await self._subscribe()
                break
            except Exception as error:  # NATS may be restarting: keep trying
                log.warning("cannot create consumer, retrying", durable=self._durable, error=repr(error))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
        log.info("consuming", stream=self._stream, durable=self._durable, subjects=self._subjects)
        failures = 0
        while not self._stopping.is_set() and self._sub is not None:
            try:
                messages = await self._sub.fetch(self._batch, timeout=1.0)
                failures = 0
            except nats.errors.TimeoutError:
                continue
            except Exception as error:
                failures += 1
                log.warning("fetch failed", durable=self._durable, error=repr(error))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _backoff(min(failures, 5)))
                continue
            await asyncio.gather(*(self._handle(msg) for msg in messages))
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def stop(self) -> None:
        self._stopping.set()

    async def _handle(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        num_delivered = msg.metadata.num_delivered or 1
        envelope = Envelope(
            subject=msg.subject,
            event_type=headers.get(EVENT_TYPE_HEADER, ""),
            event_id=headers.get(EVENT_ID_HEADER) or headers.get(MSG_ID_HEADER, ""),
            data=msg.data,
            num_delivered=num_delivered,
            headers=headers,
        )
        try:
            await self._handler(envelope)
        except PermanentError as error:
            await self._dead_letter(msg, envelope, f"permanent: {error}")
            return
        except Exception as error:
            if num_delivered >= self._max_deliver:
                await self._dead_letter(msg, envelope, f"max_deliver ({self._max_deliver}) exhausted: {error!r}")
                return
            log.warning(
                "handler failed, will retry",
                durable=self._durable,
                subject=msg.subject,
                event_id=envelope.event_id,
                attempt=num_delivered,
                error=repr(error),
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=_backoff(num_delivered))
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
            await self._bus.js.publish(f"dlq.{self._durable}", envelope.data, headers=headers, timeout=5.0)
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
