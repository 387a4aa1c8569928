"""The transactional outbox: events saved with the state change, published later by a relay."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import Message
from opentelemetry import trace
from prometheus_client import Counter

from chassis import metrics, tracing
from chassis.bus import Bus
from chassis.logging import get_logger
from chassis.routing import subject_of

__all__ = ["OutboxEvent", "OutboxRelay", "OutboxSource"]

log = get_logger(__name__)


@dataclass(frozen=True)
class OutboxEvent:
    """An event owed to the bus: serialized, with the id JetStream dedups on.

    ``aggregate_id`` is the id of the entity the event is about (logged, so that one entity can be
    followed); ``ref`` is the store's own handle on where the event waits (e.g. the owning document's id).
    ``trace_context`` is the W3C trace context (``traceparent``, ``tracestate``) of the operation that
    saved the event, kept with it until the relay publishes it; None while tracing is off.
    """

    event_id: str
    subject: str
    event_type: str
    payload: bytes
    aggregate_id: str = ""
    ref: str = ""
    trace_context: Mapping[str, str] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, message: Message, *, event_id: str, aggregate_id: str = "") -> OutboxEvent:
        """Wrap a protobuf event for the outbox, on the subject its contract declares, in the current trace."""
        return cls(
            event_id=event_id,
            subject=subject_of(message),
            event_type=message.DESCRIPTOR.full_name,
            payload=message.SerializeToString(deterministic=True),
            aggregate_id=aggregate_id,
            trace_context=None if tracing.tracer is None else tracing.current_trace_context(),
        )


class OutboxSource(Protocol):
    """What a store offers the relay."""

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        """Events saved but not yet published, oldest first."""
        ...

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        """Forget events the bus has acknowledged."""
        ...

    async def backlog(self) -> tuple[int, float | None]:
        """How many events wait, and when the oldest was saved (Unix time; None when none waits)."""
        ...


class OutboxRelay:
    """Publishes pending events, then clears them; retries with backoff while NATS is away.

    Woken by ``notify()`` after each commit, and by a poll as a safety net. Several replicas
    may relay the same event: JetStream drops the repeat by its ``Nats-Msg-Id``. Each published
    event is logged with its aggregate id under ``aggregate_name`` (e.g. ``order_id``).

    With tracing on, each publish is a PRODUCER span, child of the context the event was saved in
    (kept in the outbox, so it survives a NATS outage and a restart), and the message carries it on
    in its ``traceparent``/``tracestate`` headers. While /metrics is served, the relay counts what it
    publishes and, once per ``BACKLOG_INTERVAL``, asks the store for the backlog (count, oldest).
    """

    #: Seconds between two backlog queries (the outbox gauges), while /metrics is served.
    BACKLOG_INTERVAL = 1.0

    def __init__(
        self,
        source: OutboxSource,
        bus: Bus,
        *,
        aggregate_name: str = "aggregate_id",
        batch: int = 512,
        poll_interval: float = 1.0,
    ) -> None:
        self._source = source
        self._aggregate_name = aggregate_name
        self._bus = bus
        self._batch = batch
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._published: dict[str, Counter] = {}

    def notify(self) -> None:
        """Tell the relay new events were committed."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until ``stop()``; the backlog gauges are kept fresh meanwhile, NATS or not."""
        watcher = asyncio.create_task(self._watch_backlog(), name="outbox-backlog") if metrics.serving() else None
        try:
            await self._relay()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _relay(self) -> None:
        if not await self._bus.wait_connected(self._stopping):
            return
        failures = 0
        while not self._stopping.is_set():
            try:
                drained = await self.relay_once()
                failures = 0
            except Exception as error:
                failures += 1
                metrics.OUTBOX_PUBLISH_FAILURES.inc()
                delay = min(0.05 * 2**failures, 2.0)
                log.warning("outbox relay failed, retrying", error=repr(error), retry_in=delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            if not drained:  # a full batch went out: more may be waiting
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()

    async def _watch_backlog(self) -> None:
        """Refresh ``outbox_pending_events`` and ``outbox_oldest_event_age_seconds`` once per interval."""
        while not self._stopping.is_set():
            try:
                count, oldest = await self._source.backlog()
            except Exception as error:  # the store is away: keep the last values, try again later
                log.debug("outbox backlog unknown", error=repr(error))
            else:
                metrics.OUTBOX_PENDING.set(count)
                metrics.OUTBOX_OLDEST_AGE.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.BACKLOG_INTERVAL)

    async def relay_once(self) -> bool:
        """Publish one batch; return True when the outbox is empty afterwards."""
        self._wake.clear()
        events = await self._source.pending_events(self._batch)
        if not events:
            return True
        active = tracing.tracer
        if active is None:  # tracing off: no span, no extra header
            await self._bus.publish_all([(e.subject, e.payload, e.event_id, e.event_type) for e in events])
            await self._source.mark_published(events)
            for e in events:
                self._published_one(e)
            return len(events) < self._batch
        with tracing.producer_spans(
            active, [(e.subject, e.event_type, e.event_id, len(e.payload), e.trace_context) for e in events]
        ) as publishing:
            await self._bus.publish_all(
                [(e.subject, e.payload, e.event_id, e.event_type) for e in events], headers=publishing.headers
            )
        await self._source.mark_published(events)
        for e, span in zip(events, publishing.spans, strict=True):
            with trace.use_span(span):  # the log line carries the publish's trace and span ids
                self._published_one(e)
        return len(events) < self._batch

    def _published_one(self, e: OutboxEvent) -> None:
        counter = self._published.get(e.event_type)
        if counter is None:
            counter = self._published[e.event_type] = metrics.OUTBOX_PUBLISHED.labels(e.event_type)
        counter.inc()
        log.info(
            "event published",
            subject=e.subject,
            event_type=e.event_type,
            event_id=e.event_id,
            **{self._aggregate_name: e.aggregate_id},
        )
