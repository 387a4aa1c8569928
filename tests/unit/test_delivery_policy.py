"""The delivery policy: ack after success, nak with backoff on failure, dead-letter poison and exhausted messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from orders.v1 import events_pb2

from chassis.delivery import Delivery, Envelope, PermanentError, num_delivered


@dataclass
class FakeMsg:
    data: bytes
    num_delivered: int = 1
    subject: str = "orders.created"
    headers: dict[str, str] = field(
        default_factory=lambda: {"Event-Type": "orders.v1.OrderCreated", "Nats-Msg-Id": "e-1", "Event-Id": "e-1"}
    )
    outcome: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(num_delivered=self.num_delivered, sequence=SimpleNamespace(stream=42))

    async def ack(self) -> None:
        self.outcome.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.outcome.append(("nak", delay))

    async def term(self) -> None:
        self.outcome.append(("term", None))


class FakeJetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, subject: str, data: bytes, headers: dict[str, str], timeout: float) -> None:
        self.published.append((subject, data, headers))


def consumer(handler: Any, max_deliver: int = 3) -> tuple[Delivery, FakeJetStream]:
    js = FakeJetStream()
    return Delivery(lambda: js, "ORDERS", "payment-svc-orders", handler, max_deliver), js


VALID = events_pb2.OrderCreated(order_id="o-1").SerializeToString()


async def test_a_handled_message_is_acked_and_the_handler_sees_the_decoded_event() -> None:
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.decode(events_pb2.OrderCreated).order_id)

    c, js = consumer(handler)
    msg = FakeMsg(VALID)
    await c.handle(msg)  # type: ignore[arg-type]
    assert (seen, msg.outcome, js.published) == (["o-1"], [("ack", None)], [])


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.1), (2, 0.2)])
async def test_a_transient_failure_is_nakked_with_growing_backoff(attempt: int, delay: float) -> None:
    async def handler(envelope: Envelope) -> None:
        raise ConnectionError("store away")

    c, js = consumer(handler, max_deliver=3)
    msg = FakeMsg(VALID, num_delivered=attempt)
    await c.handle(msg)  # type: ignore[arg-type]
    assert msg.outcome == [("nak", pytest.approx(delay))]
    assert js.published == []


async def test_the_last_allowed_attempt_is_dead_lettered_with_its_reason_not_dropped() -> None:
    async def handler(envelope: Envelope) -> None:
        raise ConnectionError("store away")

    c, js = consumer(handler, max_deliver=3)
    msg = FakeMsg(VALID, num_delivered=3)
    await c.handle(msg)  # type: ignore[arg-type]
    assert msg.outcome == [("term", None)]
    ((subject, data, headers),) = js.published
    assert (subject, data) == ("dlq.payment-svc-orders", VALID)
    assert headers["Dlq-Original-Subject"] == "orders.created"
    assert headers["Dlq-Original-Sequence"] == "42"
    assert "max_deliver (3) exhausted" in headers["Dlq-Reason"]
    assert headers["Nats-Msg-Id"] == "dlq:ORDERS:42:payment-svc-orders"


async def test_an_undecodable_message_is_dead_lettered_at_once() -> None:
    async def handler(envelope: Envelope) -> None:
        envelope.decode(events_pb2.OrderCreated)

    c, js = consumer(handler)
    msg = FakeMsg(b"\xff\xff garbage")
    await c.handle(msg)  # type: ignore[arg-type]
    assert msg.outcome == [("term", None)]
    assert "undecodable" in js.published[0][2]["Dlq-Reason"]


async def test_a_message_of_an_unexpected_type_is_permanent() -> None:
    envelope = Envelope("orders.created", "payments.v1.PaymentFailed", "e", VALID, 1)
    with pytest.raises(PermanentError):
        envelope.decode(events_pb2.OrderCreated)


async def test_a_message_that_cannot_be_parked_is_nakked_for_later_instead_of_lost() -> None:
    async def handler(envelope: Envelope) -> None:
        raise PermanentError("poison")

    c, js = consumer(handler)

    async def broken_publish(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError("nats away")

    js.publish = broken_publish  # type: ignore[method-assign]
    msg = FakeMsg(VALID)
    await c.handle(msg)  # type: ignore[arg-type]
    assert msg.outcome == [("nak", 1.0)]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("$JS.ACK.ORDERS.payment-svc-orders.3.42.40.1764000000000000000.0", 3),
        ("$JS.ACK.hub.ACCOUNTHASH.ORDERS.payment-svc-orders.5.42.40.1764000000000000000.0.rand", 5),
    ],
    ids=["v1 ack subject", "v2 ack subject with domain and account"],
)
def test_the_delivery_count_is_read_from_the_ack_subject(reply: str, expected: int) -> None:
    msg = SimpleNamespace(reply=reply, metadata=SimpleNamespace(num_delivered=99))
    assert num_delivered(msg) == expected  # type: ignore[arg-type]


def test_the_delivery_count_falls_back_to_the_metadata() -> None:
    msg = SimpleNamespace(reply="", metadata=SimpleNamespace(num_delivered=4))
    assert num_delivered(msg) == 4  # type: ignore[arg-type]
