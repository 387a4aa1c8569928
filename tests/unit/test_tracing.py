"""Tracing: off unless OTEL_* asks, free while off; on, a trace crosses the outbox and NATS; logs carry its ids."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import cast

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from orders.v1 import events_pb2

from chassis import tracing
from chassis.bus import Bus
from chassis.delivery import Envelope, PermanentError
from chassis.logging import add_trace_ids, configure_logging
from chassis.outbox import OutboxEvent, OutboxRelay
from tests.unit.test_delivery_policy import VALID, FakeMsg, consumer


@pytest.fixture(autouse=True)
def tracing_off() -> Iterator[None]:
    """Every test starts and ends with tracing off, as a service without OTEL_* does."""
    tracing.uninstall()
    yield
    tracing.uninstall()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()


# ── The switch ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
    ],
)
def test_tracing_is_on_only_when_the_standard_variables_ask_for_an_exporter(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


def test_off_by_default_nothing_is_set_up() -> None:
    assert tracing.configure_tracing("order_svc", {}) is False
    assert tracing.tracer is None
    assert tracing.server_interceptor() is None
    assert tracing.current_trace_context() is None
    with tracing.span("anything") as span:
        assert span is None


def test_the_exporter_follows_the_protocol_and_refuses_what_it_cannot_do() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    (grpc_exporter,) = tracing._exporters(endpoint)
    assert isinstance(grpc_exporter, GrpcExporter)
    (http_exporter,) = tracing._exporters({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert isinstance(http_exporter, HttpExporter)
    (console,) = tracing._exporters({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(console, ConsoleSpanExporter)
    with pytest.raises(tracing.TracingSettingsError, match="http/json"):
        tracing._exporters({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    with pytest.raises(tracing.TracingSettingsError, match="zipkin"):
        tracing._exporters({"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.parametrize(
    ("extra", "name"),
    [({}, "payment_svc"), ({"OTEL_SERVICE_NAME": "payments-eu"}, "payments-eu")],
)
def test_on_the_process_is_named_after_its_service_unless_otel_service_name_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], name: str
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    try:
        assert tracing.configure_tracing("payment_svc", env) is True
        provider = tracing._provider
        assert provider is not None
        assert provider.resource.attributes["service.name"] == name
        assert "TraceIdRatioBased{0.25}" in provider.sampler.get_description()
        assert tracing.server_interceptor() is not None
    finally:
        tracing.shutdown_tracing(timeout=1.0)
    assert tracing.tracer is None


# ── Free while off ───────────────────────────────────────────────────────────────────────────


class RecordingBus:
    """What the relay needs of the bus; records each publish_all call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[tuple[str, bytes, str, str]], Sequence[Mapping[str, str]] | None]] = []

    async def publish_all(
        self,
        messages: Sequence[tuple[str, bytes, str, str]],
        timeout: float = 5.0,
        *,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        self.calls.append((list(messages), headers))


class ListSource:
    def __init__(self, events: list[OutboxEvent]) -> None:
        self.events = events

    async def pending_events(self, limit: int) -> Sequence[OutboxEvent]:
        return self.events[:limit]

    async def mark_published(self, events: Sequence[OutboxEvent]) -> None:
        self.events = [e for e in self.events if e not in events]

    async def backlog(self) -> tuple[int, float | None]:
        return len(self.events), None


def _event(event_id: str = "e-1") -> OutboxEvent:
    return OutboxEvent.of(events_pb2.OrderCreated(order_id="o-1"), event_id=event_id, aggregate_id="o-1")


def _relay(events: list[OutboxEvent]) -> tuple[OutboxRelay, RecordingBus, ListSource]:
    bus, source = RecordingBus(), ListSource(events)
    return OutboxRelay(source, cast(Bus, bus)), bus, source


async def test_off_the_outbox_keeps_no_context_and_the_relay_adds_no_header() -> None:
    event = _event()
    assert event.trace_context is None
    relay, bus, source = _relay([event])
    assert await relay.relay_once()
    assert bus.calls == [([("orders.created", event.payload, "e-1", "orders.v1.OrderCreated")], None)]
    assert source.events == []


async def test_off_a_consumed_message_makes_no_span(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_span(*args: object, **kwargs: object) -> None:
        raise AssertionError("a span was made while tracing is off")

    monkeypatch.setattr(tracing, "consumer_span", no_span)
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.event_id)

    delivery, _ = consumer(handler)
    msg = FakeMsg(VALID)
    await delivery.handle(msg)  # type: ignore[arg-type]
    assert (seen, msg.outcome) == (["e-1"], [("ack", None)])


# ── On: through the outbox and NATS ──────────────────────────────────────────────────────────


def _only(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is kind]


async def test_on_an_event_keeps_the_context_it_was_saved_in_and_is_published_under_a_producer_span(
    spans: InMemorySpanExporter,
) -> None:
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("CreateOrder", kind=SpanKind.SERVER) as request:
        event = _event()
    assert event.trace_context is not None
    assert event.trace_context["traceparent"].split("-")[2] == format(request.get_span_context().span_id, "016x")

    relay, bus, _ = _relay([event])
    await relay.relay_once()
    (producer,) = _only(spans, SpanKind.PRODUCER)
    assert producer.name == "publish orders.v1.OrderCreated"
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert producer.context is not None
    assert producer.context.trace_id == request.get_span_context().trace_id
    assert dict(producer.attributes or {}) == {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "orders.created",
        "messaging.message.id": "e-1",
        "messaging.message.body.size": len(event.payload),
        "event.type": "orders.v1.OrderCreated",
    }
    ((_, headers),) = bus.calls
    assert headers is not None
    trace_id, span_id = headers[0]["traceparent"].split("-")[1:3]
    assert (trace_id, span_id) == (format(producer.context.trace_id, "032x"), format(producer.context.span_id, "016x"))


async def test_on_a_failed_publish_marks_its_producer_spans_failed(spans: InMemorySpanExporter) -> None:
    relay, bus, _ = _relay([_event("e-1"), _event("e-2")])

    async def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("nats away")

    bus.publish_all = unreachable  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    failed = _only(spans, SpanKind.PRODUCER)
    assert [s.status.status_code for s in failed] == [StatusCode.ERROR, StatusCode.ERROR]
    assert all(s.parent is None for s in failed), "an event saved outside any trace starts its own"


def _traceparent(exporter: InMemorySpanExporter) -> dict[str, str]:
    """Headers as a relay publishes them: a producer span's context."""
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER):
        return dict(tracing.current_trace_context() or {})


def _msg_with(headers: Mapping[str, str], attempt: int = 1) -> FakeMsg:
    msg = FakeMsg(VALID, num_delivered=attempt)
    msg.headers.update(headers)
    return msg


async def test_on_a_handler_runs_in_a_consumer_span_child_of_the_producer(spans: InMemorySpanExporter) -> None:
    carried = _traceparent(spans)
    inside: list[tuple[str, str] | None] = []

    async def handler(envelope: Envelope) -> None:
        inside.append(tracing.trace_ids())

    delivery, _ = consumer(handler)
    await delivery.handle(_msg_with(carried))  # type: ignore[arg-type]
    (producer,) = _only(spans, SpanKind.PRODUCER)
    (span,) = _only(spans, SpanKind.CONSUMER)
    assert span.name == "process orders.v1.OrderCreated"
    assert span.parent is not None
    assert producer.context is not None
    assert span.parent.span_id == producer.context.span_id
    attributes = dict(span.attributes or {})
    assert attributes[tracing.ATTEMPT] == 1
    assert attributes[tracing.REDELIVERED] is False
    assert attributes[tracing.OUTCOME] == "ack"
    assert attributes["messaging.consumer.group.name"] == "payment-svc-orders"
    assert span.status.status_code is StatusCode.UNSET
    assert span.context is not None
    assert inside == [(format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))]


async def test_on_a_failed_attempt_is_an_error_and_its_redelivery_is_flagged(spans: InMemorySpanExporter) -> None:
    carried = _traceparent(spans)
    attempts = iter([ConnectionError("store away"), None])

    async def handler(envelope: Envelope) -> None:
        error = next(attempts)
        if error is not None:
            raise error

    delivery, _ = consumer(handler, max_deliver=3)
    first, second = _msg_with(carried, attempt=1), _msg_with(carried, attempt=2)
    await delivery.handle(first)  # type: ignore[arg-type]
    await delivery.handle(second)  # type: ignore[arg-type]
    assert (first.outcome[0][0], second.outcome) == ("nak", [("ack", None)])
    failed, retried = _only(spans, SpanKind.CONSUMER)
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert dict(failed.attributes or {})[tracing.OUTCOME] == "nak"
    assert dict(retried.attributes or {})[tracing.ATTEMPT] == 2
    assert dict(retried.attributes or {})[tracing.REDELIVERED] is True
    assert [e.name for e in retried.events] == ["redelivered"]
    assert failed.parent == retried.parent


async def test_on_a_dead_letter_is_an_event_and_an_error_on_the_span(spans: InMemorySpanExporter) -> None:
    async def handler(envelope: Envelope) -> None:
        raise PermanentError("broken invariant")

    delivery, js = consumer(handler)
    msg = _msg_with(_traceparent(spans))
    await delivery.handle(msg)  # type: ignore[arg-type]
    ((subject, _, headers),) = js.published
    assert subject == "dlq.payment-svc-orders"
    assert "traceparent" in headers, "a dead letter keeps the trace it belongs to (a replay continues it)"
    (span,) = _only(spans, SpanKind.CONSUMER)
    assert span.status.status_code is StatusCode.ERROR
    assert "dead-lettered" in (span.status.description or "")
    dead = [e for e in span.events if e.name == "dead-lettered"]
    assert len(dead) == 1
    assert dict(dead[0].attributes or {})["dlq.reason"] == "permanent: broken invariant"
    assert dict(span.attributes or {})[tracing.OUTCOME] == "dead_letter"


# ── Log lines ────────────────────────────────────────────────────────────────────────────────


def test_the_log_processor_adds_nothing_while_tracing_is_off() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("elsewhere"):
        assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}


def test_the_log_processor_adds_the_current_span_and_nothing_outside_one(spans: InMemorySpanExporter) -> None:
    assert add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("outer") as outer, tracing.tracer.start_as_current_span("inner") as inner:
        line = add_trace_ids(None, "info", {"event": "inside"})
    context = inner.get_span_context()
    assert line == {
        "event": "inside",
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }
    assert outer.get_span_context().trace_id == context.trace_id


def test_every_service_log_line_goes_through_the_processor(
    spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from chassis.logging import flush_logs, get_logger

    try:
        configure_logging("order_svc")
        assert add_trace_ids in structlog.get_config()["processors"]
        assert tracing.tracer is not None
        with tracing.tracer.start_as_current_span("op") as op:
            get_logger("t").info("inside", order_id="o-1")
        get_logger("t").info("outside")
        flush_logs()
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        structlog.reset_defaults()
    inside, outside = lines
    assert inside["trace_id"] == format(op.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(op.get_span_context().span_id, "016x")
    assert "trace_id" not in outside
    assert "span_id" not in outside
