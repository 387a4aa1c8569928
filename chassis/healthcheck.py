"""``python -m chassis.healthcheck HOST:PORT [SERVICE]``: exit 0 if the gRPC server is SERVING (for containers)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["check", "main"]


def check(target: str, service: str = "", timeout: float = 3.0) -> bool:
    """Whether ``target``'s grpc.health.v1 reports ``service`` (empty: the whole server) as SERVING."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the target of the command line; print why not when it is not serving."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python -m chassis.healthcheck HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    if check(args[0], args[1] if len(args) == 2 else ""):
        return 0
    print(f"{args[0]} is not serving", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
