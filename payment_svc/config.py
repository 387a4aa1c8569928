"""Settings of payment_svc (environment variables prefixed PAYMENT_SVC_, plus the shared ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings

__all__ = ["PaymentSettings"]


class PaymentSettings(ServiceSettings):
    """Settings of payment_svc; e.g. ``PAYMENT_SVC_DECLINE_RATE`` (default 0.0)."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_SVC_", extra="ignore", frozen=True)

    grpc_port: int = Field(50052, ge=0, le=65535)
    mongodb_database: str = "payments"
    decline_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of other/unspecified methods declined")
    latency_ms: float = Field(0.0, ge=0.0, le=60_000, description="simulated provider round trip")
    seed: int | None = Field(None, description="seed of the mock provider's randomness (repeatable runs)")
