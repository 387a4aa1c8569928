"""A local OTLP/gRPC trace receiver that only counts what it gets (``python -m bench.otlp_sink``).

The benchmark's services export their spans here when it measures what tracing costs: a real
exporter doing real work (batching, serialising, gRPC), against devstack.otlp's receiver in a
process of its own, so that receiving costs neither the services nor the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from devstack.otlp import OtlpReceiver

__all__ = ["main"]


async def _serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    receiver = await OtlpReceiver(port, keep=False).start()
    await stop.wait()
    await receiver.stop()
    print(f"spans received: {receiver.received}", flush=True)


def main() -> None:
    """Entry point of ``python -m bench.otlp_sink --port PORT`` (or ``BENCH_PORT=PORT``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "0")))
    args = parser.parse_args()
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
