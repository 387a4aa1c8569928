"""Typed settings every service shares, read from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Settings common to every service.

    Shared settings have fixed names (``NATS_URL``, ``NATS_USER``, ``NATS_PASSWORD``,
    ``NATS_DECLARE_STREAMS``, ``MONGODB_URI``, ``MONGODB_SERVER_SELECTION_TIMEOUT_MS``,
    ``DATA_DIR``, ``LOG_LEVEL``, ``LOG_FORMAT``); a service's own settings carry its prefix,
    e.g. ``ORDER_SVC_GRPC_PORT``. A bad value stops the service at start. Tracing is not here: it
    follows the standard ``OTEL_*`` variables (``chassis.tracing``).
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias="NATS_URL")
    nats_user: str | None = Field(
        None, validation_alias="NATS_USER", description="the service's own NATS user; empty: no credentials"
    )
    nats_password: SecretStr | None = Field(
        None, validation_alias="NATS_PASSWORD", description="that user's password (never logged)"
    )
    nats_declare_streams: bool | None = Field(
        None,
        validation_alias="NATS_DECLARE_STREAMS",
        description="create/update the streams at connect; empty: only when no NATS_USER is set",
    )
    mongodb_uri: str | None = Field(None, validation_alias="MONGODB_URI")
    mongodb_server_selection_timeout_ms: int = Field(
        5000,
        gt=0,
        validation_alias="MONGODB_SERVER_SELECTION_TIMEOUT_MS",
        description="how long an operation, and the start, wait for a reachable MongoDB before failing",
    )
    data_dir: Path = Field(Path("data"), validation_alias="DATA_DIR")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "console"] = Field("json", validation_alias="LOG_FORMAT")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = Field("127.0.0.1", description="address the /metrics endpoint binds")
    metrics_port: int = Field(0, ge=-1, le=65535, description="port of /metrics (Prometheus); 0: a free one, -1: off")
    mongodb_database: str = ""
    max_deliver: int = Field(5, ge=1, le=1000, description="attempts before a message is dead-lettered")
    fetch_batch: int = Field(128, ge=1, le=4096)
    ack_wait_seconds: float = Field(
        30.0,
        ge=1.0,
        le=3600.0,
        description="seconds a delivered event may stay unacknowledged before JetStream redelivers it",
    )
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=300)

    @field_validator("nats_user", "nats_password", "nats_declare_streams", mode="before")
    @classmethod
    def _empty_nats_setting_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def declares_streams(self) -> bool:
        """Whether the bus creates/updates its streams: ``NATS_DECLARE_STREAMS``, by default only without a user.

        A plain dev nats-server (no auth) lets anyone declare streams, so the service does it itself;
        with credentials the streams are the bootstrap identity's job and the service only uses them.
        """
        if self.nats_declare_streams is None:
            return not self.nats_user
        return self.nats_declare_streams

    @property
    def sqlite_path(self) -> Path:
        """Where this service's SQLite database lives when no MongoDB is configured."""
        return self.data_dir / f"{self.mongodb_database}.sqlite3"
