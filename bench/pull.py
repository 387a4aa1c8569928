"""A lean continuous pull consumer on bare nats-py: pull requests kept outstanding, deliveries handled in waves."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["WaveConsumer"]

WaveHandler = Callable[[list[Msg]], Awaitable[None]]


class WaveConsumer:
    """Keeps up to ``batch`` messages requested from a durable pull consumer; hands over all that arrived at once.

    The raw-limit code of the benchmark uses it (not the chassis), so that the limits show what the
    libraries allow with no policy on top: no nak/term/dead-letter, no logging.
    """

    def __init__(
        self, nc: NatsClient, stream: str, durable: str, handler: WaveHandler, batch: int = 256, expires: float = 30.0
    ) -> None:
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._handler = handler
        self._batch = batch
        self._expires_ns = int(expires * 1e9)
        self._outstanding = 0
        self._buffer: list[Msg] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._inbox = ""

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and "Status" in headers and not msg.data:
            if headers["Status"] in ("408", "409"):  # a pull request expired or was cut: its credit is gone
                self._outstanding -= int(headers.get("Nats-Pending-Messages", "0") or 0)
                self._wake.set()
            return
        self._outstanding -= 1
        self._buffer.append(msg)
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            if self._outstanding <= self._batch // 2:
                want = self._batch - self._outstanding
                self._outstanding += want
                request = json.dumps({"batch": want, "expires": self._expires_ns}).encode()
                await self._nc.publish(self._next_subject, request, reply=self._inbox)
            if not self._buffer:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
            if self._buffer:
                wave, self._buffer = self._buffer, []
                await self._handler(wave)
