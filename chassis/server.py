"""gRPC server bootstrap: health, reflection, error mapping and graceful stop for every service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chassis.grpc_errors import ErrorMappingInterceptor
from chassis.logging import get_logger

__all__ = ["GrpcServer", "ServiceBinding"]

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer, the generated function that registers it, and its full service name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    name: str


class GrpcServer:
    """A grpc.aio server with grpc.health.v1, reflection, domain-error mapping and optional outer interceptors."""

    def __init__(
        self, host: str, port: int, services: Sequence[ServiceBinding], interceptors: Sequence[Any] = ()
    ) -> None:
        """``interceptors`` (e.g. metrics, tracing) run outside the error mapping, the first outermost."""
        self._address = f"{host}:{port}"
        self._services = services
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server = grpc.aio.server(
            interceptors=[*interceptors, ErrorMappingInterceptor()],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4 * 1024 * 1024)],
        )
        self.port = 0

    async def start(self) -> int:
        """Bind, start serving and mark every service SERVING; return the bound port."""
        for binding in self._services:
            binding.add_to_server(binding.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [b.name for b in self._services]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        try:
            self.port = self._server.add_insecure_port(self._address)
        except RuntimeError as error:
            raise OSError(f"cannot listen on {self._address}: is the port taken by another process?") from error
        await self._server.start()
        for name in ["", *names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("grpc serving", address=self._address.rsplit(":", 1)[0] + f":{self.port}", services=names)
        return self.port

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls and give in-flight ones ``grace`` seconds."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
