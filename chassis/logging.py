"""Structured logging for every service: one JSON object per line (or readable console lines)."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import IO, Any, Literal

import structlog

from chassis import tracing

__all__ = ["add_trace_ids", "configure_logging", "flush_logs", "get_logger"]


class _TickWriter:
    """Writes log lines to a stream once per event-loop iteration (at once when no loop runs here).

    A busy service logs several lines per order; one write and flush per line would be one
    system call each. Lines logged during one iteration of the loop go out together right
    after it, so nothing waits longer than the code that logged it keeps the loop busy.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        atexit.register(self.flush)

    def write_line(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the event loop's thread: write now
            self.flush()
            return
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled_on = None
        with self._lock:
            lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # the stream is closed or broken: logging must not take the service down
                return


def _fallback(value: object) -> object:
    """What the JSON encoder makes of a value it does not know: its ``__structlog__()``, else its repr."""
    structlog_form = getattr(value, "__structlog__", None)
    return structlog_form() if callable(structlog_form) else repr(value)


_ENCODER = json.JSONEncoder(default=_fallback)


def _encode_json(event_dict: Any, **_ignored: Any) -> str:
    """json.dumps with one encoder built once (json.dumps builds a new one per call when given options)."""
    return _ENCODER.encode(event_dict)


class _LineLogger:
    """The structlog logger: every level hands the rendered line to the writer."""

    def __init__(self, writer: _TickWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write_line(message)

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


_writer: _TickWriter | None = None


def add_trace_ids(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Add ``trace_id`` and ``span_id`` of the current span to a line logged inside a traced operation.

    Nothing is added outside a span, and nothing is even looked up while tracing is off.
    """
    if tracing.tracer is None:
        return event_dict
    ids = tracing.trace_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


def flush_logs() -> None:
    """Write out log lines still waiting for the end of the loop iteration (before a hard exit)."""
    if _writer is not None:
        _writer.flush()


def configure_logging(service: str, level: str = "INFO", fmt: Literal["json", "console"] = "json") -> None:
    """Route structlog (and stdlib logging) to stdout, tagged with the service name."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_encode_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )

    def add_service(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    global _writer
    writer = _writer = _TickWriter(sys.stdout)
    structlog.configure(
        processors=[
            add_service,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_args: _LineLogger(writer),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=level, stream=sys.stdout, format=f"%(asctime)s {service} %(levelname)s %(name)s %(message)s"
    )


def get_logger(name: str) -> Any:
    """A structlog logger; fields given as keyword arguments become JSON keys."""
    return structlog.get_logger(name)
