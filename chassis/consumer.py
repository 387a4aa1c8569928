"""The durable pull consumer: keeps pull requests outstanding and a fixed number of handlers busy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from chassis import metrics
from chassis.delivery import DEAD_LETTER_STREAM, Delivery, backoff, dead_letter_subject
from chassis.logging import get_logger

if TYPE_CHECKING:
    from chassis.bus import Bus

__all__ = ["Consumer"]

log = get_logger(__name__)

_STATUS_HEADER = "Status"
_DESCRIPTION_HEADER = "Description"


@dataclass
class _Pull:
    """One pull request outstanding at the server: how many messages it may still bring, until when."""

    remaining: int
    deadline: float


class Consumer:
    """Runs up to ``max_in_flight`` handlers at once on a durable consumer, continuously.

    A message starts as soon as it arrives and a slot is free; a slow handler holds only its
    own slot (no waves, no head-of-line blocking). Pull requests keep the slots fed: a new one
    goes out once less than half of ``max_in_flight`` is due, so there is no round trip per
    message and no waiting for a batch to fill. No order between messages is promised: every
    handler is idempotent and guarded by the state it changes.

    What each message becomes (ack, nak, dead letter) is the ``Delivery``'s business. JetStream
    redelivers forever, so a crash never loses a message. A pull request the server forgot (e.g.
    it restarted) is given up after its expiry, and a new one is sent. On stop, what the open
    pull requests still bring is handled until they go quiet, running handlers finish, and
    anything left unhandled is nakked so that the server redelivers it at once.
    """

    #: How long the server keeps one pull request open (seconds).
    PULL_EXPIRES = 2.0
    #: Seconds between two reads of the consumer's info and its dead letters (gauges), while /metrics is served.
    INFO_INTERVAL = 3.0

    def __init__(
        self,
        bus: Bus,
        stream: str,
        durable: str,
        subjects: list[str],
        delivery: Delivery,
        max_in_flight: int,
        ack_wait: float = 30.0,
    ) -> None:
        self._bus = bus
        self._ack_wait = ack_wait
        self._stream = stream
        self._durable = durable
        self._subjects = subjects
        self._delivery = delivery
        self._max_in_flight = max_in_flight
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._pulls: deque[_Pull] = deque()
        self._waiting: deque[Msg] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._recreate = False
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"

    @property
    def in_hand(self) -> int:
        """Messages delivered to this replica and not yet settled (running or waiting for a slot)."""
        return len(self._running) + len(self._waiting)

    async def _ensure_consumer(self) -> None:
        """Create the durable consumer, or update it when the contracts added an event or the ack wait changed."""
        config = api.ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=-1,
            max_ack_pending=10_000,
            filter_subjects=self._subjects if len(self._subjects) > 1 else None,
            filter_subject=self._subjects[0] if len(self._subjects) == 1 else None,
        )
        try:
            info = await self._bus.js.consumer_info(self._stream, self._durable)
        except nats.js.errors.NotFoundError:
            await self._bus.js.add_consumer(self._stream, config)
            return
        current = info.config.filter_subjects or ([info.config.filter_subject] if info.config.filter_subject else [])
        if sorted(current) != sorted(self._subjects):
            log.info("updating consumer subjects", durable=self._durable, before=current, after=self._subjects)
            await self._bus.js.add_consumer(self._stream, config)
        elif info.config.ack_wait is None or abs(info.config.ack_wait - self._ack_wait) > 1e-3:
            log.info(
                "updating consumer ack wait", durable=self._durable, before=info.config.ack_wait, after=self._ack_wait
            )
            await self._bus.js.add_consumer(self._stream, config)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        """Consume until ``stop()``; finishes the work in hand before returning."""
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
        watcher = asyncio.create_task(self._watch_info(), name="consumer-info") if metrics.serving() else None
        try:
            await self._keep_pulling(inbox)
            await self._drain()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            leftovers, self._waiting = self._waiting, deque()
            for msg in leftovers:  # delivered to us but not handled: let the server redeliver them now
                with contextlib.suppress(Exception):
                    await msg.nak()

    async def _watch_info(self) -> None:
        """Every ``INFO_INTERVAL``: the consumer's pending counts and its dead letters, from JetStream, as gauges."""
        gauges = self._delivery.metrics
        dead_letters = dead_letter_subject(self._durable)
        while not self._stopping.is_set():
            try:
                info = await self._bus.js.consumer_info(self._stream, self._durable)
                gauges.pending.set(info.num_pending or 0)
                gauges.ack_pending.set(info.num_ack_pending or 0)
                parked = await self._bus.js.stream_info(DEAD_LETTER_STREAM, subjects_filter=dead_letters)
                gauges.dead_letters.set((parked.state.subjects or {}).get(dead_letters, 0))
            except Exception as error:  # NATS away or restarting: keep the last values, ask again later
                log.debug("consumer info unavailable", durable=self._durable, error=repr(error))
            await self._pause(self.INFO_INTERVAL)

    async def _keep_pulling(self, inbox: str) -> None:
        failures = 0
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
                await self._pause(backoff(min(failures, 5)))
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.PULL_EXPIRES / 2)

    async def _drain(self) -> None:
        """On stop: handle what our open pull requests still bring until they end or go quiet, then finish."""
        deadline = time.monotonic() + self.PULL_EXPIRES
        while self._pulls and time.monotonic() < deadline:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(0.25, deadline - time.monotonic()))
            except (TimeoutError, ValueError):
                break
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _pull_more(self, inbox: str) -> None:
        """Forget pull requests past their expiry; ask for more once fewer than half the slots are due."""
        now = time.monotonic()
        while self._pulls and self._pulls[0].deadline < now:
            self._pulls.popleft()  # expired without a word from the server: it forgot the request
        due = sum(p.remaining for p in self._pulls) + self.in_hand
        if due > self._max_in_flight // 2:
            return
        want = self._max_in_flight - due
        request = json.dumps({"batch": want, "expires": int(self.PULL_EXPIRES * 1e9)}).encode()
        self._pulls.append(_Pull(want, now + self.PULL_EXPIRES + 0.5))
        await self._bus.nc.publish(self._next_subject, request, reply=inbox)

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and not msg.data and _STATUS_HEADER in headers:
            status = headers[_STATUS_HEADER]
            if status in ("404", "408", "409") and self._pulls:  # the oldest pull request ended
                self._pulls.popleft()
            if status == "409" and "deleted" in headers.get(_DESCRIPTION_HEADER, "").lower():
                self._recreate = True
            self._wake.set()
            return
        if self._pulls:
            self._pulls[0].remaining -= 1
            if self._pulls[0].remaining <= 0:
                self._pulls.popleft()
        self._waiting.append(msg)
        self._start_waiting()
        self._wake.set()

    def _start_waiting(self) -> None:
        """Fill free slots from the messages waiting, oldest first."""
        while self._waiting and len(self._running) < self._max_in_flight:
            task = asyncio.create_task(self._delivery.handle(self._waiting.popleft()))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start_waiting()
        self._wake.set()  # a slot is free: maybe time to pull more

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
