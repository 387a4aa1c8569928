"""Settings of order_svc (environment variables prefixed ORDER_SVC_, plus the shared ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings

__all__ = ["OrderSettings"]


class OrderSettings(ServiceSettings):
    """Settings of order_svc; e.g. ``ORDER_SVC_GRPC_PORT`` (default 50051)."""

    model_config = SettingsConfigDict(env_prefix="ORDER_SVC_", extra="ignore", frozen=True)

    grpc_port: int = Field(50051, ge=0, le=65535)
    metrics_port: int = Field(
        9101, ge=-1, le=65535, description="port of /metrics (Prometheus); 0: a free one, -1: off"
    )
    mongodb_database: str = "orders"
