"""The event bus: JetStream streams, publishing with dedup ids, and the durable pull-consumer policy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
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
STATUS_HEADER = "Status"
DESCRIPTION_HEADER = "Description"

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

    def decode_any(self, *classes: type[Message]) -> Message:
        """Parse the payload as whichever of ``classes`` its event type names; any other type is permanent."""
        for cls in classes:
            if self.event_type == cls.DESCRIPTOR.full_name:
                return self.decode(cls)
        raise PermanentError(f"no handler for event type {self.event_type!r}")

    def log_consumed(self, order_id: str) -> None:
        """The INFO line that lets a reader follow one order through the services."""
        log.info(
            "event consumed",
            event_type=self.event_type,
            event_id=self.event_id,
            order_id=order_id,
            attempt=self.num_delivered,
        )


Handler = Callable[[Envelope], Awaitable[None]]


def _backoff(num_delivered: int) -> float:
    return float(min(0.1 * 2 ** (num_delivered - 1), 10.0))


def _num_delivered(msg: Msg) -> int:
    """The delivery count, read straight from the ack subject (cheaper than parsing all the metadata)."""
    tokens = (getattr(msg, "reply", None) or "").split(".")
    index = 4 if len(tokens) == 9 else 6 if len(tokens) >= 11 else -1
    if index > 0 and tokens[index].isdigit():
        return int(tokens[index]) or 1
    return msg.metadata.num_delivered or 1


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
        try:  # a server that lost its store comes back without streams: declare them again
            await self.ensure_streams()
        except Exception as error:
            log.warning("cannot declare streams after reconnect", error=repr(error))

    async def wait_connected(self, stop: asyncio.Event) -> bool:
        """Wait until connected (True) or until ``stop`` is set (False), whichever comes first."""
        waiters = [asyncio.ensure_future(self.connected.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self.connected.is_set() and not stop.is_set()

    async def ensure_streams(self) -> None:
        """Create or update every stream: file storage, a dedup window; event streams keep 7 days.

        Dead letters never expire: they wait for a person to inspect and replay them.
        """
        for name, subjects in STREAMS.items():
            config = api.StreamConfig(
                name=name,
                subjects=subjects,
                storage=api.StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=0 if name == DEAD_LETTER_STREAM else STREAM_MAX_AGE_SECONDS,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(config)

    async def publish_all(self, messages: Sequence[tuple[str, bytes, str, str]], timeout: float = 5.0) -> None:
        """Publish ``(subject, payload, event_id, event_type)`` messages at once and wait for every PubAck.

        The messages go out back to back and their acks are awaited together (no round trip
        each); any error or a missing ack raises, and the caller may publish them all again:
        JetStream drops the repeats by their ``Nats-Msg-Id``.
        """
        if not messages:
            return
        futures = [
            await self.js.publish_async(
                subject,
                payload,
                headers={MSG_ID_HEADER: event_id, EVENT_ID_HEADER: event_id, EVENT_TYPE_HEADER: event_type},
            )
            for subject, payload, event_id, event_type in messages
        ]
        done, pending = await asyncio.wait(futures, timeout=timeout)
        for future in pending:
            future.cancel()
        if pending:
            raise nats.errors.TimeoutError(f"{len(pending)} of {len(messages)} publishes were not acknowledged")
        for future in done:
            future.result()  # raises the publish's error, if any

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


@dataclass
class _Pull:
    """One pull request outstanding at the server: how many messages it may still bring, until when."""

    remaining: int
    deadline: float


class Consumer:
    """Keeps pull requests outstanding on a durable consumer and runs the handler on what arrives.

    Messages are handled as they arrive, in waves (all that came in while the last wave was
    being handled, run concurrently), while further pull requests keep up to ``batch``
    messages coming: no round trip per batch, and no waiting for a batch to fill.

    Policy: ack after the handler returns (its effect is saved); ``PermanentError`` → dead-letter;
    any other error → ``nak`` with exponential backoff, and dead-letter once ``max_deliver``
    attempts are spent. JetStream itself redelivers forever, so a crash never loses a message.
    A pull request that the server forgot (e.g. it restarted) is given up after its expiry,
    and a new one is sent. On stop, what the open pull requests still bring is handled until
    they go quiet; anything left unhandled is nakked so that the server redelivers it at once.
    """

    #: How long the server keeps one pull request open (seconds).
    PULL_EXPIRES = 2.0

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
        self._wake = asyncio.Event()
        self._pulls: deque[_Pull] = deque()
        self._arrived: list[Msg] = []
        self._recreate = False
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"

    async def _ensure_consumer(self) -> None:
        """Create the durable consumer unless it exists (its config is then left as it is)."""
        config = api.ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=-1,
            max_ack_pending=10_000,
            filter_subjects=self._subjects if len(self._subjects) > 1 else None,
            filter_subject=self._subjects[0] if len(self._subjects) == 1 else None,
        )
        try:
            await self._bus.js.consumer_info(self._stream, self._durable)
        except nats.js.errors.NotFoundError:
            await self._bus.js.add_consumer(self._stream, config)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        """Consume until ``stop()``; finishes the wave in hand before returning."""
        if not await self._bus.wait_connected(self._stopping):
            return
        while not self._stopping.is_set():
            try:
                await self._ensure_consumer()
                break
            except Exception as error:  # NATS may be restarting: keep trying
                log.warning("cannot create consumer, retrying", durable=self._durable, error=repr(error))
                await self._pause(1.0)
        if self._stopping.is_set():
            return
        inbox = self._bus.nc.new_inbox()
        sub = await self._bus.nc.subscribe(inbox, cb=self._on_msg)
        log.info("consuming", stream=self._stream, durable=self._durable, subjects=self._subjects)
        failures = 0
        try:
            while not self._stopping.is_set():
                if self._recreate:
                    self._recreate = False
                    try:
                        await self._ensure_consumer()
                    except Exception as error:
                        log.warning("cannot recreate consumer, retrying", durable=self._durable, error=repr(error))
                        self._recreate = True
                        await self._pause(1.0)
                        continue
                try:
                    await self._pull_more(inbox)
                    failures = 0
                except Exception as error:
                    failures += 1
                    log.warning("pull request failed", durable=self._durable, error=repr(error))
                    await self._pause(_backoff(min(failures, 5)))
                    continue
                if not self._arrived:
                    self._wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.PULL_EXPIRES / 2)
                if self._arrived:
                    wave, self._arrived = self._arrived, []
                    await asyncio.gather(*(self._handle(msg) for msg in wave))
            await self._drain()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            leftovers, self._arrived = self._arrived, []
            for msg in leftovers:  # delivered to us but not handled: let the server redeliver them now
                with contextlib.suppress(Exception):
                    await msg.nak()

    async def _drain(self) -> None:
        """On stop: handle what our open pull requests still bring, until they end or go quiet."""
        deadline = time.monotonic() + self.PULL_EXPIRES
        while self._pulls or self._arrived:
            if not self._arrived:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(0.25, deadline - time.monotonic()))
                except (TimeoutError, ValueError):
                    return
            if self._arrived:
                wave, self._arrived = self._arrived, []
                await asyncio.gather(*(self._handle(msg) for msg in wave))
            if time.monotonic() >= deadline:
                return

    async def _pull_more(self, inbox: str) -> None:
        """Forget pull requests past their expiry; ask for more once fewer than half a batch are due."""
        now = time.monotonic()
        while self._pulls and self._pulls[0].deadline < now:
            self._pulls.popleft()  # expired without a word from the server: it forgot the request
        due = sum(p.remaining for p in self._pulls) + len(self._arrived)
        if due > self._batch // 2:
            return
        want = self._batch - due
        request = json.dumps({"batch": want, "expires": int(self.PULL_EXPIRES * 1e9)}).encode()
        self._pulls.append(_Pull(want, now + self.PULL_EXPIRES + 0.5))
        await self._bus.nc.publish(self._next_subject, request, reply=inbox)

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and not msg.data and STATUS_HEADER in headers:
            status = headers[STATUS_HEADER]
            if status in ("404", "408", "409") and self._pulls:  # the oldest pull request ended
                self._pulls.popleft()
            if status == "409" and "deleted" in headers.get(DESCRIPTION_HEADER, "").lower():
                self._recreate = True
            self._wake.set()
            return
        if self._pulls:
            self._pulls[0].remaining -= 1
            if self._pulls[0].remaining <= 0:
                self._pulls.popleft()
        self._arrived.append(msg)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers or {}
        num_delivered = _num_delivered(msg)
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
