"""Settings of notification_svc (environment variables prefixed NOTIFICATION_SVC_, plus the shared ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis.settings import ServiceSettings

__all__ = ["NotificationSettings"]


class NotificationSettings(ServiceSettings):
    """Settings of notification_svc; ``NOTIFICATION_SVC_SMTP_HOST`` unset means no e-mail."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_SVC_", extra="ignore", frozen=True)

    grpc_port: int = Field(50053, ge=0, le=65535)
    metrics_port: int = Field(
        9103, ge=-1, le=65535, description="port of /metrics (Prometheus); 0: a free one, -1: off"
    )
    mongodb_database: str = "notifications"
    smtp_host: str = Field("", description="SMTP relay host; empty disables e-mail")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "orders@example.com"
    smtp_recipient_domain: str = Field("example.com", description="domain for customer ids that are not addresses")
