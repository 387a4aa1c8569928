"""An OTLP trace receiver for tests (gRPC and HTTP): collects the spans services export, draws a trace as a tree."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from devstack.stack import free_port

__all__ = ["OtlpReceiver", "ReceivedSpan", "render_tree"]

_KINDS = {
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
}


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, decoded: ids in hex, the exporting service, attributes, events and status."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(hash=False)
    events: tuple[tuple[str, dict[str, Any]], ...] = field(hash=False)
    error: bool = False
    status_message: str = ""

    @property
    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


def _collect(request: trace_service_pb2.ExportTraceServiceRequest, into: list[ReceivedSpan]) -> None:
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                into.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=_KINDS.get(span.kind, str(span.kind)),
                        service=service,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        events=tuple((e.name, _attributes(e.attributes)) for e in span.events),
                        error=span.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                        status_message=span.status.message,
                    )
                )


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        if self._receiver.keep:
            _collect(request, self._receiver.spans)
        else:
            self._receiver.received += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def _http_handler(spans: list[ReceivedSpan]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            _collect(trace_service_pb2.ExportTraceServiceRequest.FromString(body), spans)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class OtlpReceiver:
    """OTLP trace receivers on 127.0.0.1, free ports: gRPC (``endpoint``) and HTTP/protobuf (``http_endpoint``).

    ``spans`` grows as the services export, whichever protocol they use. With ``keep=False`` (a sink
    for a benchmark) spans that arrive over gRPC are only counted, in ``received``.
    """

    def __init__(self, port: int = 0, *, keep: bool = True) -> None:
        self.port = port or free_port()
        self.http_port = free_port()
        self.keep = keep
        self.received = 0
        self.spans: list[ReceivedSpan] = []
        self._server: grpc.aio.Server | None = None
        self._http: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for OTLP/gRPC (http: the exporter connects without TLS)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_endpoint(self) -> str:
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` (``/v1/traces`` added)."""
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self) -> OtlpReceiver:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Collector(self), self._server
        )
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        self._http = ThreadingHTTPServer(("127.0.0.1", self.http_port), _http_handler(self.spans))
        threading.Thread(target=self._http.serve_forever, name="otlp-http", daemon=True).start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(1)
            self._server = None
        if self._http is not None:
            await asyncio.to_thread(self._http.shutdown)
            self._http.server_close()
            self._http = None

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace received so far, by start time."""
        return sorted((s for s in list(self.spans) if s.trace_id == trace_id), key=lambda s: s.start_ns)

    def with_attribute(self, key: str, value: Any) -> list[ReceivedSpan]:
        """The spans whose attribute ``key`` equals ``value`` (e.g. ``messaging.message.id``), by start time."""
        return sorted((s for s in list(self.spans) if s.attributes.get(key) == value), key=lambda s: s.start_ns)


def _describe(span: ReceivedSpan) -> str:
    extra: list[str] = []
    attempt = span.attributes.get("messaging.nats.message.delivery_attempt")
    if attempt is not None:
        extra.append(f"attempt {attempt}")
    outcome = span.attributes.get("messaging.nats.message.outcome")
    if outcome:
        extra.append(str(outcome))
    for name, _ in span.events:
        if name != "exception":
            extra.append(f"event: {name}")
    if span.error:
        extra.append("ERROR" + (f" ({span.status_message})" if span.status_message else ""))
    return f"  ({', '.join(extra)})" if extra else ""


def render_tree(spans: Sequence[ReceivedSpan]) -> str:
    """One trace as an indented tree: service, kind, name, start (ms after the first span) and duration."""
    if not spans:
        return "(no spans)"
    ids = {s.span_id for s in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    roots: list[ReceivedSpan] = []
    for span in sorted(spans, key=lambda s: s.start_ns):
        if span.parent_span_id and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    origin = min(s.start_ns for s in spans)
    rows: list[tuple[str, str]] = []

    def walk(span: ReceivedSpan, lead: str, branch: str) -> None:
        label = f"{lead}{branch}{span.service} {span.kind} {span.name}{_describe(span)}"
        timing = f"{(span.start_ns - origin) / 1e6:9.1f} ms {(span.end_ns - span.start_ns) / 1e6:9.1f} ms"
        rows.append((label, timing))
        below = children.get(span.span_id, [])
        inner = lead + {"": "", "└─ ": "   "}.get(branch, "│  ")
        for index, child in enumerate(below):
            walk(child, inner, "└─ " if index == len(below) - 1 else "├─ ")

    for root in roots:
        walk(root, "", "")
    width = max(len(label) for label, _ in rows)
    header = f"trace {spans[0].trace_id}".ljust(width) + f"  {'start':>12} {'duration':>12}"
    return "\n".join([header, *(f"{label.ljust(width)}  {timing}" for label, timing in rows)])
