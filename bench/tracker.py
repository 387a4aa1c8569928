"""Sees, from NATS alone, when an order is final and its notification stored, without asking the services.

An ordered consumer on the payment-outcome stream maps each event's stream sequence to its
order; a plain subscription on ``$JS.ACK.<stream>.>`` sees every acknowledgement the
services' durable consumers send. A consumer acks only after its handler's effect is saved,
so the ack of the order consumer marks the order final (committed) and the ack of the
notification consumer marks the notification stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

__all__ = ["AckTracker"]

_ACKS = (b"", b"+ACK")


def parse_ack_subject(subject: str) -> tuple[str, str, int] | None:
    """(stream, consumer, stream sequence) of a ``$JS.ACK`` subject, in its v1 or v2 form."""
    tokens = subject.split(".")
    try:
        if len(tokens) == 9:
            return tokens[2], tokens[3], int(tokens[5])
        if len(tokens) >= 11:
            return tokens[4], tokens[5], int(tokens[7])
    except ValueError:
        return None
    return None


class AckTracker:
    """When each order reached each milestone (``time.perf_counter()``), keyed by order id.

    ``milestones`` maps a durable consumer name to the milestone its ack marks.
    """

    def __init__(
        self,
        nc: NatsClient,
        *,
        stream: str,
        subject: str,
        milestones: Mapping[str, str],
        order_id_of: Callable[[Msg], str],
    ) -> None:
        self._nc = nc
        self._stream = stream
        self._subject = subject
        self._milestones = dict(milestones)
        self._order_id_of = order_id_of
        self._order_of_seq: dict[int, str] = {}
        self._early_acks: dict[int, list[tuple[str, float]]] = {}
        self._reached: dict[str, dict[str, float]] = {m: {} for m in self._milestones.values()}
        self._waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self._subs: list[Subscription] = []
        self.events_seen = 0
        self.acks_seen = 0

    async def start(self) -> None:
        js = self._nc.jetstream()
        self._subs.append(await self._nc.subscribe(f"$JS.ACK.{self._stream}.>", cb=self._on_ack))
        self._subs.append(
            await js.subscribe(
                self._subject,
                stream=self._stream,
                cb=self._on_event,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.NEW,
                idle_heartbeat=5.0,
            )
        )
        await self._nc.flush()

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be closing
                continue
        self._subs.clear()

    def reset(self) -> None:
        """Forget every order (between runs); waiters still pending are cancelled."""
        for future in self._waiters.values():
            future.cancel()
        self._waiters.clear()
        self._order_of_seq.clear()
        self._early_acks.clear()
        for reached in self._reached.values():
            reached.clear()

    async def _on_event(self, msg: Msg) -> None:
        self.events_seen += 1
        seq = msg.metadata.sequence.stream
        order_id = self._order_id_of(msg)
        if not order_id:  # an event that marks no milestone (e.g. a change to a non-final state)
            self._early_acks.pop(seq, None)
            return
        self._order_of_seq[seq] = order_id
        for milestone, at in self._early_acks.pop(seq, ()):
            self._mark(order_id, milestone, at)

    async def _on_ack(self, msg: Msg) -> None:
        at = time.perf_counter()
        if msg.data not in _ACKS:
            return
        parsed = parse_ack_subject(msg.subject)
        if parsed is None:
            return
        _, consumer, seq = parsed
        milestone = self._milestones.get(consumer)
        if milestone is None:
            return
        self.acks_seen += 1
        order_id = self._order_of_seq.get(seq)
        if order_id is None:  # the ack overtook the event on its way to us
            self._early_acks.setdefault(seq, []).append((milestone, at))
        else:
            self._mark(order_id, milestone, at)

    def _mark(self, order_id: str, milestone: str, at: float) -> None:
        reached = self._reached[milestone]
        if order_id in reached:
            return
        reached[order_id] = at
        future = self._waiters.pop((order_id, milestone), None)
        if future is not None and not future.done():
            future.set_result(at)

    async def wait(self, order_id: str, milestone: str, timeout: float) -> float:
        """When ``order_id`` reached ``milestone`` (perhaps already); TimeoutError after ``timeout`` seconds."""
        at = self._reached[milestone].get(order_id)
        if at is not None:
            return at
        future = self._waiters.get((order_id, milestone))
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[(order_id, milestone)] = future
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise TimeoutError(f"order {order_id} did not reach {milestone} within {timeout}s") from None
