"""The consumer's pull requests: credit kept topped up, requests ended by status or expiry, a deleted consumer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from chassis.bus import Consumer


@dataclass
class Delivered:
    data: bytes = b"event"
    headers: dict[str, str] | None = None


@dataclass
class FakeNats:
    requests: list[tuple[str, int, str]] = field(default_factory=list)

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.requests.append((subject, int(json.loads(payload)["batch"]), reply))


async def handler(_envelope: Any) -> None:
    return None


def consumer(batch: int = 10) -> tuple[Consumer, FakeNats]:
    nc = FakeNats()
    bus = SimpleNamespace(nc=nc)
    return Consumer(bus, "PAYMENTS", "order-svc-payments", ["payments.>"], handler, 5, batch), nc  # type: ignore[arg-type]


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
    c._arrived.clear()  # handled
    for _ in range(2):
        await c._on_msg(Delivered())  # type: ignore[arg-type]
    c._arrived.clear()
    await c._pull_more("_INBOX.me")
    assert [r[1] for r in nc.requests] == [10, 6]


async def test_a_request_timeout_ends_the_oldest_request_and_a_new_one_follows() -> None:
    c, nc = consumer(batch=10)
    await c._pull_more("_INBOX.me")
    await c._on_msg(status("408", "Request Timeout"))  # type: ignore[arg-type]
    assert not c._pulls
    assert c._arrived == []
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
