"""Distributed tracing (OpenTelemetry), configured only by the standard ``OTEL_*`` environment variables.

Off by default: without ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
or an ``OTEL_TRACES_EXPORTER`` other than ``none``) no provider, processor or exporter exists,
``tracer`` stays ``None``, and every hot path (the outbox write, the relay, the consumer) tests that
one module attribute first and then does exactly what it did before tracing existed: no span
objects, no header dicts.

On, it exports OTLP/gRPC (``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` for OTLP/HTTP) in batches
(``OTEL_BSP_*``), samples by ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (default
``parentbased_always_on``), and names the process ``service.name`` = the service's name unless
``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` says otherwise.

A trace crosses NATS as W3C ``traceparent``/``tracestate`` headers. An event saved to the outbox
keeps the context it was written in (``current_trace_context``); the relay publishes it under a
PRODUCER span that is a child of that context (``producer_spans``), whenever NATS takes it, and
a consumer runs its handler in a CONSUMER span, child of the producer's (``consumer_span``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "ATTEMPT",
    "OUTCOME",
    "REDELIVERED",
    "TracingSettingsError",
    "configure_tracing",
    "consumer_span",
    "current_trace_context",
    "install",
    "producer_spans",
    "server_interceptor",
    "shutdown_tracing",
    "span",
    "trace_ids",
    "tracer",
    "uninstall",
    "wanted",
]

log = structlog.get_logger(__name__)

#: The tracer while tracing is on; ``None`` while it is off (the default). Hot paths test this first.
tracer: Tracer | None = None
_provider: TracerProvider | None = None

# Messaging semantic conventions (https://opentelemetry.io/docs/specs/semconv/messaging/).
SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
BODY_SIZE = "messaging.message.body.size"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
CONSUMER_GROUP = "messaging.consumer.group.name"
#: NATS-specific, after ``messaging.gcp_pubsub.message.delivery_attempt``: 1 on the first delivery.
ATTEMPT = "messaging.nats.message.delivery_attempt"
REDELIVERED = "messaging.nats.message.redelivered"
#: What became of the message: ``ack``, ``nak`` (retried later) or ``dead_letter``.
OUTCOME = "messaging.nats.message.outcome"
STREAM = "messaging.nats.stream"
EVENT_TYPE = "event.type"

_NO_SPAN: AbstractContextManager[None] = nullcontext()


class TracingSettingsError(ValueError):
    """The ``OTEL_*`` variables ask for something this service cannot do (e.g. an unknown protocol)."""


def _list(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def wanted(env: Mapping[str, str]) -> bool:
    """Whether ``env`` turns tracing on: an OTLP endpoint, or an explicit ``OTEL_TRACES_EXPORTER`` other than ``none``.

    ``OTEL_SDK_DISABLED=true`` and ``OTEL_TRACES_EXPORTER=none`` keep it off whatever else is set.
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _list(env.get("OTEL_TRACES_EXPORTER"))
    if exporters is not None:
        return exporters != ["none"]
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    """OTLP over gRPC by default, over HTTP with ``http/protobuf``; endpoint, headers, TLS from ``OTEL_*``."""
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise TracingSettingsError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    found: list[SpanExporter] = []
    for name in _list(env.get("OTEL_TRACES_EXPORTER")) or ["otlp"]:
        if name == "otlp":
            found.append(_otlp_exporter(env))
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            found.append(ConsoleSpanExporter())
        elif name != "none":
            raise TracingSettingsError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    return found


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Set up tracing for this process if ``env`` (default: ``os.environ``) asks for it; True when on.

    Raises ``TracingSettingsError`` for settings it cannot honour, so that a service with a typo in
    its ``OTEL_*`` variables stops at start instead of silently tracing nothing.
    """
    env = os.environ if env is None else env
    if not wanted(env):
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = _exporters(env)
    named = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (TracerProvider reads them).
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: service_name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    install(provider)
    log.info(
        "tracing on",
        exporters=[type(e).__module__ + "." + type(e).__name__ for e in exporters],
        endpoint=env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        sampler=env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
    )
    return True


def install(provider: TracerProvider) -> None:
    """Trace with ``provider`` from now on (``configure_tracing`` calls it; tests give an in-memory one)."""
    global tracer, _provider
    _provider = provider
    tracer = provider.get_tracer("chassis")


def uninstall() -> None:
    """Tracing off again (nothing is flushed: see ``shutdown_tracing``)."""
    global tracer, _provider
    tracer = None
    _provider = None


def shutdown_tracing(timeout: float = 3.0) -> None:
    """Export what is still buffered and stop the exporters, waiting ``timeout`` seconds at most.

    Best effort at the end of a service's life: an unreachable collector (the SDK's own waits
    can add up to tens of seconds) must not hold up a graceful stop, so the shutdown runs on a
    daemon thread and is left behind after ``timeout``.
    """
    provider = _provider
    uninstall()
    if provider is None:
        return
    stopping = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    stopping.start()
    stopping.join(timeout)


def server_interceptor() -> Any:
    """The OpenTelemetry grpc.aio server interceptor (a SERVER span per RPC), or None while tracing is off.

    Health checks and reflection are left out: load balancers and probes call them all the time.
    """
    if _provider is None:
        return None
    from opentelemetry.instrumentation.grpc import aio_server_interceptor
    from opentelemetry.instrumentation.grpc.filters import any_of, health_check, negate, service_prefix

    return aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=_provider, filter_=negate(any_of(health_check(), service_prefix("grpc.reflection")))
    )


def trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the span current here, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_trace_context() -> dict[str, str] | None:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``), to keep with an outbox event.

    None while tracing is off or outside any span: the event is then stored exactly as before.
    """
    if tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def span(name: str, kind: SpanKind = SpanKind.INTERNAL) -> AbstractContextManager[Span | None]:
    """A child span of the current one around a step (e.g. a provider call), current inside.

    While tracing is off it is a shared no-op that gives None (set attributes only on a span).
    """
    if tracer is None:
        return _NO_SPAN
    return tracer.start_as_current_span(name, kind=kind)


class _Publishing:
    """PRODUCER spans of one batch of publishes, one per event, each with the headers that carry it on."""

    def __init__(self, spans: list[Span], headers: list[dict[str, str]]) -> None:
        self.spans = spans
        self.headers = headers

    def fail(self, error: BaseException) -> None:
        for one in self.spans:
            one.record_exception(error)
            one.set_status(Status(StatusCode.ERROR, type(error).__name__))


@contextmanager
def producer_spans(
    active: Tracer, events: Sequence[tuple[str, str, str, int, Mapping[str, str] | None]]
) -> Iterator[_Publishing]:
    """One PRODUCER span per ``(subject, event_type, event_id, size, stored trace context)``, ended on exit.

    Each span is a child of the context its event was saved in (a new trace if it has none), and
    its ``headers`` (``traceparent``, ``tracestate``) are what the message must carry. An error
    raised inside marks every span of the batch failed.
    """
    spans: list[Span] = []
    headers: list[dict[str, str]] = []
    for subject, event_type, event_id, size, stored in events:
        parent = propagate.extract(stored) if stored else None
        one = active.start_span(
            f"publish {event_type}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                SYSTEM: "nats",
                OPERATION_TYPE: "send",
                OPERATION_NAME: "publish",
                DESTINATION: subject,
                MESSAGE_ID: event_id,
                BODY_SIZE: size,
                EVENT_TYPE: event_type,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(one))
        spans.append(one)
        headers.append(carrier)
    publishing = _Publishing(spans, headers)
    try:
        yield publishing
    except BaseException as error:
        publishing.fail(error)
        raise
    finally:
        for one in spans:
            one.end()


@contextmanager
def consumer_span(
    active: Tracer,
    headers: Mapping[str, str],
    *,
    subject: str,
    event_type: str,
    event_id: str,
    size: int,
    attempt: int,
    stream: str,
    consumer: str,
) -> Iterator[Span]:
    """The CONSUMER span a handler runs in: current inside, a child of the producer's context in ``headers``.

    It carries the attempt number; a redelivery (attempt > 1) is flagged and gets a ``redelivered``
    event, so a retried message stands out in a trace view.
    """
    with active.start_as_current_span(
        f"process {event_type or subject}",
        context=propagate.extract(headers),
        kind=SpanKind.CONSUMER,
        record_exception=False,
        set_status_on_exception=False,
        attributes={
            SYSTEM: "nats",
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            DESTINATION: subject,
            MESSAGE_ID: event_id,
            BODY_SIZE: size,
            CONSUMER_GROUP: consumer,
            STREAM: stream,
            EVENT_TYPE: event_type,
            ATTEMPT: attempt,
            REDELIVERED: attempt > 1,
        },
    ) as current:
        if attempt > 1:
            current.add_event("redelivered", {ATTEMPT: attempt})
        yield current
