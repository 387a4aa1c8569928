"""The transactional outbox: events saved with the state change, published later by a relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message

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
    """

    event_id: str
    subject: str
    event_type: str
    payload: bytes
    aggregate_id: str = ""
    ref: str = ""

    @classmethod
    def of(cls, message: Message, *, event_id: str, aggregate_id: str = "") -> OutboxEvent:
        """Wrap a protobuf event for the outbox, on the subject its contract declares."""
        return cls(
            event_id=event_id,
            subject=subject_of(message),
            event_type=message.DESCRIPTOR.full_name,
            payload=message.SerializeToString(deterministic=True),
            aggregate_id=aggregate_id,
        )


class OutboxSource(Protocol):
    """What a store offers the relay."""

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        """Events saved but not yet published, oldest first."""
        ...

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        """Forget events the bus has acknowledged."""
        ...


class OutboxRelay:
    """Publishes pending events, then clears them; retries with backoff while NATS is away.

    Woken by ``notify()`` after each commit, and by a poll as a safety net. Several replicas
    may relay the same event: JetStream drops the repeat by its ``Nats-Msg-Id``. Each published
    event is logged with its aggregate id under ``aggregate_name`` (e.g. ``order_id``).
    """

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

    def notify(self) -> None:
        """Tell the relay new events were committed."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        if not await self._bus.wait_connected(self._stopping):
            return
        failures = 0
        while not self._stopping.is_set():
            try:
                drained = await self.relay_once()
                failures = 0
            except Exception as error:
                failures += 1
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

    async def relay_once(self) -> bool:
        """Publish one batch; return True when the outbox is empty afterwards."""
        self._wake.clear()
        events = await self._source.pending_events(self._batch)
        if not events:
            return True
        await self._bus.publish_all([(e.subject, e.payload, e.event_id, e.event_type) for e in events])
        await self._source.mark_published(events)
        for e in events:
            log.info(
                "event published",
                subject=e.subject,
                event_type=e.event_type,
                event_id=e.event_id,
                **{self._aggregate_name: e.aggregate_id},
            )
        return len(events) < self._batch
