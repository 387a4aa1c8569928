"""The service lifecycle every service shares: start, serve, and stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chassis.bus import Bus
from chassis.consumer import Consumer
from chassis.logging import configure_logging, flush_logs, get_logger
from chassis.mongo import MongoUnavailable, check_reachable
from chassis.mongo import connect as mongo_connect
from chassis.outbox import OutboxRelay
from chassis.server import GrpcServer, ServiceBinding
from chassis.settings import ServiceSettings

__all__ = ["Closer", "Components", "choose_store", "run", "serve"]

log = get_logger(__name__)
S = TypeVar("S")
EX_UNAVAILABLE = 69  # sysexits.h: a service it needs (MongoDB) is unavailable
Closer = Callable[[], Awaitable[None]]


def choose_store(
    settings: ServiceSettings, name: str, *, sqlite: Callable[[Path], S], mongo: Callable[[Any], S]
) -> tuple[S, list[Closer]]:
    """MongoDB when ``MONGODB_URI`` is set (the service's own database), else SQLite under ``DATA_DIR``."""
    if settings.mongodb_uri:
        client = mongo_connect(settings.mongodb_uri, name, settings.mongodb_server_selection_timeout_ms)
        log.info("store: mongodb", database=settings.mongodb_database)
        return mongo(client[settings.mongodb_database]), [client.close]
    log.info("store: sqlite", path=str(settings.sqlite_path))
    return sqlite(settings.sqlite_path), []


@dataclass
class Components:
    """What a composition root wires together for the lifecycle to run."""

    grpc_services: Sequence[ServiceBinding]
    consumers: Sequence[Consumer] = ()
    relays: Sequence[OutboxRelay] = ()
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = ()
    closers: list[Closer] = field(default_factory=list)


async def serve(
    name: str,
    settings: ServiceSettings,
    build: Callable[[Bus], Awaitable[Components]],
    stop: asyncio.Event,
) -> None:
    """Run one service until ``stop`` is set, then shut down in order.

    gRPC serves as soon as the store is open (orders are accepted while NATS is away: the
    outbox holds their events); the bus connects in the background and consumers and
    relays start when it does. On stop: NOT_SERVING, no new RPCs or fetches, in-flight
    work finishes (nothing unfinished is acked), the outbox gets a last flush.

    With ``MONGODB_URI`` set, MongoDB is pinged first: unreachable within
    ``MONGODB_SERVER_SELECTION_TIMEOUT_MS``, it raises ``MongoUnavailable`` before anything starts.
    """
    if settings.mongodb_uri:
        await check_reachable(settings.mongodb_uri, name, settings.mongodb_server_selection_timeout_ms)
    bus = Bus(
        settings.nats_url,
        name,
        user=settings.nats_user,
        password=settings.nats_password,
        declare_streams=settings.declares_streams,
    )
    components = await build(bus)
    server = GrpcServer(settings.grpc_host, settings.grpc_port, components.grpc_services)
    try:
        await server.start()
    except Exception:
        for close in reversed(components.closers):
            await close()
        raise
    connecting = asyncio.create_task(bus.connect(), name="bus-connect")
    consumer_tasks = [asyncio.create_task(c.run(), name="consumer") for c in components.consumers]
    relay_tasks = [asyncio.create_task(r.run(), name="relay") for r in components.relays]
    other_tasks = [asyncio.create_task(job(stop), name="background") for job in components.background]
    log.info("service started", grpc_port=server.port)
    await stop.wait()

    log.info("service stopping")
    for consumer in components.consumers:
        consumer.stop()
    await server.stop(settings.shutdown_grace_seconds)
    await asyncio.gather(*consumer_tasks, *other_tasks, return_exceptions=True)
    for relay in components.relays:
        relay.stop()
    await asyncio.gather(*relay_tasks, return_exceptions=True)
    if bus.connected.is_set():
        for relay in components.relays:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay.relay_once(), 2.0)
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await connecting
    await bus.close()
    for close in reversed(components.closers):
        await close()
    log.info("service stopped")


def run(name: str, settings: ServiceSettings, build: Callable[[Bus], Awaitable[Components]]) -> None:
    """Entry point of ``python -m <service>``: logging, uvloop, signals, then ``serve``."""
    configure_logging(name, settings.log_level, settings.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(name, settings, build, stop)

    try:
        import uvloop

        uvloop.run(main())
    except OSError as error:  # e.g. the gRPC port is taken: say so plainly, no traceback
        log.error("cannot start", error=str(error))
        sys.exit(1)
    except MongoUnavailable as error:  # one line naming the (redacted) URI, no traceback
        log.error(str(error))
        flush_logs()
        sys.exit(EX_UNAVAILABLE)
    # Everything is closed and flushed by now; skip the interpreter's teardown, where gRPC's
    # C core can take seconds to stop its threads and would delay a restart or a rolling deploy.
    flush_logs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
