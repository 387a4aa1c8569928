"""The bare pipeline: the saga's shape (1 RPC, 4 publishes, 3 consumes, 4 document writes) with no business logic.

Run as three processes like the services (``python -m bench.bare --role order|payment|notification``,
or ``BENCH_ROLE=...``; every option also reads an environment variable):

- order: ``CreateOrder`` RPC → write the order document → publish ``bare.created`` and ``bare.changed``;
  consumes ``bare.paid`` → write the order again → publish ``bare.changed``;
- payment: consumes ``bare.created`` → write a payment document → publish ``bare.paid``;
- notification: consumes ``bare.paid`` → write a notification document.

It uses the same libraries and settings as the services (grpc.aio, nats-py JetStream with
``Nats-Msg-Id``, SQLite WAL with ``synchronous=NORMAL`` on one thread, or MongoDB), acks after
the write, and commits concurrent writes together; it has no outbox, validation,
conversions or logging. Nothing here is used by the services.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import grpc
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from orders.v1 import orders_pb2

from bench.pull import WaveConsumer

__all__ = ["CONSUMERS", "PAID_SUBJECT", "STREAM", "main", "setup_stream"]

STREAM = "BARE"
CREATED_SUBJECT = "bare.created"
PAID_SUBJECT = "bare.paid"
CHANGED_SUBJECT = "bare.changed"
#: role → (durable consumer, the subject it consumes)
CONSUMERS = {
    "payment": ("bare-payment", CREATED_SUBJECT),
    "order": ("bare-order", PAID_SUBJECT),
    "notification": ("bare-notification", PAID_SUBJECT),
}
Doc = tuple[str, bytes]


async def setup_stream(js: JetStreamContext) -> None:
    """(Re)create the stream and the three durable consumers, empty."""
    with contextlib.suppress(Exception):
        await js.delete_stream(STREAM)
    await js.add_stream(
        api.StreamConfig(
            name=STREAM,
            subjects=["bare.>"],
            storage=api.StorageType.FILE,
            duplicate_window=120.0,
        )
    )
    for durable, subject in CONSUMERS.values():
        await js.add_consumer(
            STREAM,
            api.ConsumerConfig(
                durable_name=durable,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=30.0,
                max_ack_pending=20_000,
                filter_subject=subject,
            ),
        )


class Docs(Protocol):
    """Where a role writes its documents."""

    async def write(self, docs: Sequence[Doc]) -> None: ...

    async def close(self) -> None: ...


class SqliteDocs:
    """One SQLite file on one thread; writes that arrive while a commit runs go into the next one together."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, doc BLOB NOT NULL)")
        self._queue: list[tuple[Sequence[Doc], asyncio.Future[None]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, docs: Sequence[Doc]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((docs, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            group, self._queue = self._queue, []
            rows = [doc for docs, _ in group for doc in docs]
            try:
                await loop.run_in_executor(self._executor, self._commit, rows)
            except Exception as error:
                for _, future in group:
                    future.set_exception(error)
            else:
                for _, future in group:
                    future.set_result(None)
        self._flushing = False

    def _commit(self, rows: list[Doc]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany("INSERT OR REPLACE INTO docs (id, doc) VALUES (?, ?)", rows)
        self._conn.execute("COMMIT")

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._conn.close()


class MongoDocs:
    """One MongoDB collection; a wave is one unordered ``bulk_write`` of upserts."""

    def __init__(self, uri: str, database: str) -> None:
        from pymongo import AsyncMongoClient

        self._client: Any = AsyncMongoClient(uri, appname="bench-bare")
        self._docs = self._client[database]["docs"]

    async def write(self, docs: Sequence[Doc]) -> None:
        from pymongo import ReplaceOne

        await self._docs.bulk_write(
            [ReplaceOne({"_id": key}, {"doc": doc}, upsert=True) for key, doc in docs], ordered=False
        )

    async def close(self) -> None:
        await self._client.close()


class Role:
    """One process of the bare pipeline."""

    def __init__(self, role: str, nc: NatsClient, docs: Docs) -> None:
        self.role = role
        self.nc = nc
        self.js = nc.jetstream()
        self.docs = docs
        self.tasks: set[asyncio.Task[None]] = set()

    async def publish(self, subject: str, data: bytes, msg_id: str) -> None:
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})

    def in_background(self, *publishes: tuple[str, bytes, str]) -> None:
        task = asyncio.create_task(self._publish_all(publishes))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _publish_all(self, publishes: Sequence[tuple[str, bytes, str]]) -> None:
        await asyncio.gather(*(self.publish(*p) for p in publishes))

    async def create_order(self, request: orders_pb2.CreateOrderRequest, context: Any) -> orders_pb2.Order:
        order = request.order
        order.order_id = str(uuid.uuid4())
        order.name = f"orders/{order.order_id}"
        data = order.SerializeToString()
        await self.docs.write([(order.order_id, data)])
        tagged = order.order_id.encode() + b"|" + data
        self.in_background(
            (CREATED_SUBJECT, tagged, f"created:{order.order_id}"),
            (CHANGED_SUBJECT, tagged, f"changed1:{order.order_id}"),
        )
        return order

    async def on_wave(self, wave: list[Msg]) -> None:
        order_ids = [m.data.split(b"|", 1)[0].decode() for m in wave]
        if self.role == "payment":
            await self.docs.write([(f"p:{oid}", m.data) for oid, m in zip(order_ids, wave, strict=True)])
            await asyncio.gather(
                *(self.publish(PAID_SUBJECT, m.data, f"paid:{oid}") for oid, m in zip(order_ids, wave, strict=True))
            )
        elif self.role == "order":
            await self.docs.write([(oid, m.data) for oid, m in zip(order_ids, wave, strict=True)])
            await asyncio.gather(
                *(
                    self.publish(CHANGED_SUBJECT, m.data, f"changed2:{oid}")
                    for oid, m in zip(order_ids, wave, strict=True)
                )
            )
        else:
            await self.docs.write([(f"n:{oid}", m.data) for oid, m in zip(order_ids, wave, strict=True)])
        for m in wave:
            await m.ack()


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await nats.connect(args.nats_url, name=f"bare-{args.role}")
    docs: Docs = (
        MongoDocs(args.mongodb_uri, f"{args.mongodb_prefix}_{args.role}")
        if args.mongodb_uri
        else SqliteDocs(Path(args.data_dir) / f"bare-{args.role}.sqlite3")
    )
    role = Role(args.role, nc, docs)
    consumers: list[WaveConsumer] = []
    server: grpc.aio.Server | None = None
    if args.role in CONSUMERS:
        durable, _ = CONSUMERS[args.role]
        consumers.append(WaveConsumer(nc, STREAM, durable, role.on_wave, batch=args.batch))
    if args.role == "order":
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "orders.v1.OrderService",
            {
                "CreateOrder": grpc.unary_unary_rpc_method_handler(
                    role.create_order,
                    request_deserializer=orders_pb2.CreateOrderRequest.FromString,
                    response_serializer=orders_pb2.Order.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{args.port}")
        await server.start()
    for consumer in consumers:
        await consumer.start()
    await stop.wait()
    if server is not None:
        await server.stop(1.0)
    for consumer in consumers:
        await consumer.stop()
    if role.tasks:
        await asyncio.wait(role.tasks, timeout=5)
    await nc.close()
    await docs.close()


def main() -> None:
    """Entry point of ``python -m bench.bare``."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--role", choices=["order", "payment", "notification"], default=env("BENCH_ROLE"))
    parser.add_argument("--nats-url", default=env("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--port", type=int, default=int(env("BENCH_PORT", "0")), help="gRPC port of the order role")
    parser.add_argument("--data-dir", default=env("DATA_DIR", "var/bench"))
    parser.add_argument("--mongodb-uri", default=env("MONGODB_URI", ""))
    parser.add_argument("--mongodb-prefix", default=env("BENCH_MONGODB_PREFIX", "bench_bare"))
    parser.add_argument("--batch", type=int, default=int(env("BENCH_BATCH", "256")))
    args = parser.parse_args()
    if args.role is None:
        parser.error("--role (or BENCH_ROLE) is required")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))


if __name__ == "__main__":
    main()
