"""Prometheus metrics of a service: the series every service shares, the /metrics endpoint, the gRPC interceptor.

Each service serves ``/metrics`` on its own port (``<SVC>_METRICS_PORT``, on 127.0.0.1 by default;
0 picks a free port, -1 turns the endpoint off). The series live in prometheus_client's default
registry, next to its process collector (CPU seconds, resident memory, open files) and its
Python GC and platform collectors.

The hot paths only ever call ``inc()`` on a child whose labels were bound when its owner was
built (a consumer, a relay, a gRPC method); gauges that need a query (outbox backlog, consumer
pending counts, dead letters) are refreshed by their owner in the background, and only while the
endpoint is on (``serving()``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

__all__ = [
    "CONSUMER_ACK_PENDING",
    "CONSUMER_DEAD_LETTERS",
    "CONSUMER_EVENTS",
    "CONSUMER_PENDING",
    "GRPC_HANDLED",
    "GRPC_HANDLING_SECONDS",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_PENDING",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
    "ConsumerMetrics",
    "GrpcMetricsInterceptor",
    "MetricsServer",
    "serving",
    "start_metrics_server",
]

# ── gRPC server (names as in the grpc-ecosystem's Go and Java interceptors) ─────────────────
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and gRPC status code",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its end on the server (a stream: until it ends)",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# ── Transactional outbox (its relay) ─────────────────────────────────────────────────────────
OUTBOX_PENDING = Gauge("outbox_pending_events", "Events saved in the outbox and not yet published")
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_event_age_seconds", "How long the oldest unpublished event has waited in the outbox (0: none)"
)
OUTBOX_PUBLISHED = Counter(
    "outbox_events_published_total", "Events the relay published (acknowledged by JetStream)", ["event_type"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Relay rounds that failed (e.g. NATS away) and will be retried"
)

# ── Durable consumers ────────────────────────────────────────────────────────────────────────
CONSUMER_EVENTS = Counter(
    "consumer_events_total",
    "Deliveries a consumer settled, by outcome: acked (handled), nakked (failed, retried later), "
    "dead_lettered (parked on dlq.<consumer>)",
    ["consumer", "outcome"],
)
CONSUMER_REDELIVERED = Counter(
    "consumer_redeliveries_total", "Deliveries that were not a message's first (attempt > 1)", ["consumer"]
)
CONSUMER_PENDING = Gauge(
    "consumer_pending_messages", "Messages on the stream not yet delivered to the consumer (JetStream)", ["consumer"]
)
CONSUMER_ACK_PENDING = Gauge(
    "consumer_ack_pending_messages", "Messages delivered and not yet acknowledged (JetStream)", ["consumer"]
)
CONSUMER_DEAD_LETTERS = Gauge(
    "consumer_dead_letters", "Dead letters of the consumer waiting on dlq.<consumer> in DEAD_LETTERS", ["consumer"]
)

_serving = False


def serving() -> bool:
    """Whether this process serves /metrics (background refreshes of gauges run only then)."""
    return _serving


@dataclass
class MetricsServer:
    """The /metrics HTTP endpoint of this process (prometheus_client's WSGI server on a daemon thread)."""

    host: str
    port: int
    _server: WSGIServer

    def close(self) -> None:
        """Stop serving, without waiting: the server notices within its poll interval (0.5 s)."""
        global _serving
        _serving = False

        def stop() -> None:
            self._server.shutdown()
            self._server.server_close()

        threading.Thread(target=stop, name="metrics-stop", daemon=True).start()


def start_metrics_server(host: str, port: int) -> MetricsServer | None:
    """Serve /metrics on ``host:port`` (0: a free port); None for a port of -1 (off).

    A port that is taken raises ``OSError`` (the service then stops at start, saying so).
    """
    global _serving
    if port < 0:
        return None
    # No ``*_created`` twin of every counter and histogram: half the series, nothing lost.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as error:
        raise OSError(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from error
    _serving = True
    return MetricsServer(host, int(server.server_port), server)


class ConsumerMetrics:
    """The series of one durable consumer, with their labels bound once."""

    def __init__(self, consumer: str) -> None:
        self.acked = CONSUMER_EVENTS.labels(consumer, "acked")
        self.nakked = CONSUMER_EVENTS.labels(consumer, "nakked")
        self.dead_lettered = CONSUMER_EVENTS.labels(consumer, "dead_lettered")
        self.redelivered = CONSUMER_REDELIVERED.labels(consumer)
        self.pending = CONSUMER_PENDING.labels(consumer)
        self.ack_pending = CONSUMER_ACK_PENDING.labels(consumer)
        self.dead_letters = CONSUMER_DEAD_LETTERS.labels(consumer)


# ── The gRPC server interceptor ──────────────────────────────────────────────────────────────

_OK = grpc.StatusCode.OK.name


def _code_of(context: Any, default: str) -> str:
    """The status code the RPC ends with, as set by abort()/set_code() on its context."""
    try:
        code = context.code()
    except Exception:
        return default
    if isinstance(code, grpc.StatusCode):
        return code.name
    return default if code is None or code == 0 else str(code)


class _MethodMetrics:
    """The series of one RPC method; a child per status code, bound on first use."""

    __slots__ = ("_codes", "_labels", "latency")

    def __init__(self, full_method: str, rpc_type: str) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        self._labels = (service, method, rpc_type)
        self.latency = GRPC_HANDLING_SECONDS.labels(*self._labels)
        self._codes = {_OK: GRPC_HANDLED.labels(*self._labels, _OK)}

    def handled(self, code: str) -> Any:
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = GRPC_HANDLED.labels(*self._labels, code)
        return child


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Latency histogram and status-code counter per method; wrapped handlers are built once per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @staticmethod
    def _wrap(method: str, handler: Any) -> Any:
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _timed_unary(handler.unary_unary, _MethodMetrics(method, "unary")), **options
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _timed_stream(handler.unary_stream, _MethodMetrics(method, "server_stream")), **options
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _timed_unary(handler.stream_unary, _MethodMetrics(method, "client_stream")), **options
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _timed_stream(handler.stream_stream, _MethodMetrics(method, "bidi_stream")), **options
            )
        return handler


def _timed_unary(behavior: Callable[..., Awaitable[Any]], metrics: _MethodMetrics) -> Callable[..., Awaitable[Any]]:
    async def timed(request: Any, context: Any) -> Any:
        started = time.perf_counter()
        code = _OK
        try:
            result = await behavior(request, context)
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except BaseException:
            code = _code_of(context, "UNKNOWN")
            raise
        else:
            code = _code_of(context, _OK)
            return result
        finally:
            metrics.latency.observe(time.perf_counter() - started)
            metrics.handled(code).inc()

    return timed


def _timed_stream(
    behavior: Callable[..., AsyncIterator[Any]], metrics: _MethodMetrics
) -> Callable[..., AsyncIterator[Any]]:
    async def timed(request: Any, context: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        code = _OK
        try:
            responses = behavior(request, context)
            if inspect.isawaitable(responses):  # a handler that writes with context.write() (e.g. health Watch)
                await responses
            else:
                async for item in responses:
                    yield item
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except BaseException:
            code = _code_of(context, "UNKNOWN")
            raise
        else:
            code = _code_of(context, _OK)
        finally:
            metrics.latency.observe(time.perf_counter() - started)
            metrics.handled(code).inc()

    return timed
