"""Settings of payment_svc (environment variables prefixed PAYMENT_SVC_, plus the shared ones)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings

__all__ = ["PaymentSettings"]


class PaymentSettings(ServiceSettings):
    """Settings of payment_svc; e.g. ``PAYMENT_SVC_DECLINE_RATE`` (default 0.0)."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_SVC_", extra="ignore", frozen=True)

    grpc_port: int = Field(50052, ge=0, le=65535)
    metrics_port: int = Field(
        9102, ge=-1, le=65535, description="port of /metrics (Prometheus); 0: a free one, -1: off"
    )
    mongodb_database: str = "payments"
    decline_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of other/unspecified methods declined")
    # Kept under the consumer's ack wait (PAYMENT_SVC_ACK_WAIT_SECONDS, 30 s), so a slow charge is never
    # redelivered meanwhile (checked below).
    latency_ms: float = Field(0.0, ge=0.0, le=10_000, description="simulated provider round trip")
    seed: int | None = Field(None, description="seed of the mock provider's randomness (repeatable runs)")

    @field_validator("seed", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _charge_fits_in_the_ack_wait(self) -> Self:
        if self.latency_ms / 1000 >= self.ack_wait_seconds / 2:
            raise ValueError(
                f"PAYMENT_SVC_LATENCY_MS ({self.latency_ms}) must stay under half of "
                f"PAYMENT_SVC_ACK_WAIT_SECONDS ({self.ack_wait_seconds} s): a charge is redelivered after the ack wait"
            )
        return self
