"""Typed settings every service shares, read from the environment (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Settings common to every service.

    Shared settings have fixed names (``NATS_URL``, ``MONGODB_URI``,
    ``MONGODB_SERVER_SELECTION_TIMEOUT_MS``, ``DATA_DIR``, ``LOG_LEVEL``, ``LOG_FORMAT``);
    a service's own settings carry its prefix, e.g.
    ``ORDER_SVC_GRPC_PORT``. A bad value stops the service at start.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias="NATS_URL")
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
    mongodb_database: str = ""
    max_deliver: int = Field(5, ge=1, le=1000, description="attempts before a message is dead-lettered")
    fetch_batch: int = Field(128, ge=1, le=4096)
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=300)

    @property
    def sqlite_path(self) -> Path:
        """Where this service's SQLite database lives when no MongoDB is configured."""
        return self.data_dir / f"{self.mongodb_database}.sqlite3"
