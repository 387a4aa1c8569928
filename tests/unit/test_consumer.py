"""The pull consumer: handlers kept busy with no waves, credit topped up, requests ended by status or expiry."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from chassis.consumer import Consumer


@dataclass
class Delivered:
    data: bytes = b"event"
    headers: dict[str, str] | None = None


@dataclass
class FakeNats:
    requests: list[tuple[str, int, str]] = field(default_factory=list)

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.requests.append((subject, int(json.loads(payload)["batch"]), reply))


class Gate:
    """A delivery whose handlers finish only when the test releases them, one message at a time."""

    def __init__(self) -> None:
        self.started: list[bytes] = []
        self.release: dict[bytes, asyncio.Event] = {}

    async def handle(self, msg: Delivered) -> None:
        self.started.append(msg.data)
        await self.release.setdefault(msg.data, asyncio.Event()).wait()

    def finish(self, data: bytes) -> None:
        self.release.setdefault(data, asyncio.Event()).set()


class Held:
    async def handle(self, msg: Delivered) -> None:
        await asyncio.sleep(3600)  # held in hand: the test inspects the credit, not the outcome


def consumer(batch: int = 10, delivery: Any = None) -> tuple[Consumer, FakeNats]:
    nc = FakeNats()
    bus = SimpleNamespace(nc=nc)
    return Consumer(bus, "PAYMENTS", "order-svc-payments", ["payments.>"], delivery or Held(), batch), nc  # type: ignore[arg-type]


async def settle(c: Consumer) -> None:
    """Let the handler tasks started so far run up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def cancel_all(c: Consumer) -> None:
    for task in list(c._running):
        task.cancel()
    await asyncio.gather(*c._running, return_exceptions=True)


async def test_a_slow_message_holds_only_its_own_slot_and_a_new_one_starts_at_once() -> None:
    gate = Gate()
    c, _ = consumer(batch=2, delivery=gate)
    await c._on_msg(Delivered(b"slow"))  # type: ignore[arg-type]
    await c._on_msg(Delivered(b"quick"))  # type: ignore[arg-type]
    await settle(c)
    assert gate.started == [b"slow", b"quick"]
    gate.finish(b"quick")
    await settle(c)
    await c._on_msg(Delivered(b"late"))  # type: ignore[arg-type]
    await settle(c)
    assert gate.started == [b"slow", b"quick", b"late"], "the late message did not wait for the slow one"
    gate.finish(b"slow")
    gate.finish(b"late")
    await settle(c)
    assert c.in_hand == 0


async def test_no_more_than_max_in_flight_handlers_run_and_the_next_starts_when_one_ends() -> None:
    gate = Gate()
    c, _ = consumer(batch=2, delivery=gate)
    for data in (b"a", b"b", b"c"):
        await c._on_msg(Delivered(data))  # type: ignore[arg-type]
    await settle(c)
    assert gate.started == [b"a", b"b"]
    assert c.in_hand == 3
    gate.finish(b"b")
    await settle(c)
    assert gate.started == [b"a", b"b", b"c"]
    gate.finish(b"a")
    gate.finish(b"c")
    await settle(c)
    assert c.in_hand == 0


def status(code: str, description: str = "") -> Delivered:
    return Delivered(b"", {"Status": code, "Description": description})


async def test_credit_is_topped_up_once_less_than_half_a_batch_is_due() -> None:
    c, nc = consumer(batch=10)
    await c._pull_more("_INBOX.me")
    assert nc.requests == [("$JS.API.CONSUMER.MSG.NEXT.PAYMENTS.order-svc-payments", 10, "_INBOX.me")]
    for _ in range(4):
        await c._on_msg(Delivered())  # type: ignore[arg-type]
    await c._pull_more("_INBOX.me")
    assert len(nc.requests) == 1, "6 still due plus 4 in hand: no new request"
    await cancel_all(c)  # handled
    for _ in range(2):
        await c._on_msg(Delivered())  # type: ignore[arg-type]
    await cancel_all(c)
    await c._pull_more("_INBOX.me")
    assert [r[1] for r in nc.requests] == [10, 6]


async def test_a_request_timeout_ends_the_oldest_request_and_a_new_one_follows() -> None:
    c, nc = consumer(batch=10)
    await c._pull_more("_INBOX.me")
    await c._on_msg(status("408", "Request Timeout"))  # type: ignore[arg-type]
    assert not c._pulls
    assert c.in_hand == 0
    await c._pull_more("_INBOX.me")
    assert [r[1] for r in nc.requests] == [10, 10]


async def test_a_request_the_server_forgot_is_given_up_after_its_expiry() -> None:
    c, nc = consumer(batch=10)
    await c._pull_more("_INBOX.me")
    c._pulls[0].deadline = 0.0  # as if it expired long ago without a word
    await c._pull_more("_INBOX.me")
    assert [r[1] for r in nc.requests] == [10, 10]
    assert len(c._pulls) == 1


async def test_a_deleted_consumer_is_created_again() -> None:
    c, _ = consumer()
    await c._on_msg(status("409", "Consumer Deleted"))  # type: ignore[arg-type]
    assert c._recreate


class FakeJetStream:
    """``consumer_info`` answers the durable as the server has it; ``add_consumer`` records each create/update."""

    def __init__(self, subjects: list[str], ack_wait: float | None) -> None:
        self.info = SimpleNamespace(
            config=SimpleNamespace(filter_subjects=subjects, filter_subject=None, ack_wait=ack_wait)
        )
        self.added: list[Any] = []

    async def consumer_info(self, stream: str, durable: str) -> Any:
        return self.info

    async def add_consumer(self, stream: str, config: Any) -> None:
        self.added.append(config)


async def test_the_durable_is_updated_when_its_ack_wait_changed_and_left_alone_when_not() -> None:
    for on_server, updated in ((30.0, True), (5.0, False)):
        js = FakeJetStream(["payments.>"], on_server)
        bus = SimpleNamespace(js=js)
        c = Consumer(bus, "PAYMENTS", "order-svc-payments", ["payments.>"], Held(), 10, ack_wait=5.0)  # type: ignore[arg-type]
        await c._ensure_consumer()
        assert [config.ack_wait for config in js.added] == ([5.0] if updated else [])
