"""Structured logging for every service: one JSON object per line (or readable console lines)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

__all__ = ["configure_logging", "get_logger"]


def configure_logging(service: str, level: str = "INFO", fmt: Literal["json", "console"] = "json") -> None:
    """Route structlog (and stdlib logging) to stdout, tagged with the service name."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(
        level=level, stream=sys.stdout, format=f"%(asctime)s {service} %(levelname)s %(name)s %(message)s"
    )


def get_logger(name: str) -> Any:
    """A structlog logger; fields given as keyword arguments become JSON keys."""
    return structlog.get_logger(name)
