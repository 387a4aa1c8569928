"""The gRPC floor: a grpc.aio server whose one method returns the Order it receives (``python -m bench.echo``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import grpc
from orders.v1 import orders_pb2

__all__ = ["ECHO_METHOD", "main"]

ECHO_METHOD = "/bench.v1.Echo/Echo"


async def _echo(request: orders_pb2.Order, context: Any) -> orders_pb2.Order:
    return request


async def _serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.v1.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                _echo,
                request_deserializer=orders_pb2.Order.FromString,
                response_serializer=orders_pb2.Order.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    """Entry point of ``python -m bench.echo --port PORT`` (or ``BENCH_PORT=PORT``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "0")))
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        asyncio.run(_serve(args.port))
    else:
        uvloop.run(_serve(args.port))


if __name__ == "__main__":
    main()
