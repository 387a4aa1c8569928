"""Settings of order_svc (environment variables prefixed ORDER_SVC_, plus the shared ones)."""

from __future__ import annotations

from pathlib import Path

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

    # Identity: the OpenID Connect provider whose tokens are trusted (shared names: the gateway uses them too).
    oidc_issuer: str = Field("http://127.0.0.1:9400", validation_alias="OIDC_ISSUER")
    oidc_audience: str = Field("order-saga", validation_alias="OIDC_AUDIENCE")
    oidc_jwks_url: str = Field(
        "", validation_alias="OIDC_JWKS_URL", description="default: the jwks_uri of the issuer's discovery document"
    )
    oidc_jwks_file: Path | None = Field(None, validation_alias="OIDC_JWKS_FILE")
    oidc_leeway_seconds: float = Field(30.0, ge=0, le=300, validation_alias="OIDC_LEEWAY_SECONDS")
    oidc_roles_claim: str = Field("roles", validation_alias="OIDC_ROLES_CLAIM")
    oidc_admin_role: str = Field("orders:admin", validation_alias="OIDC_ADMIN_ROLE")
    insecure_no_auth: bool = Field(
        False, description="benchmark baseline only: no token is checked and the request names the customer"
    )

    @property
    def jwks_source(self) -> str:
        """Where the signing keys come from: the explicit URL, else the issuer's discovery document."""
        return self.oidc_jwks_url or f"{self.oidc_issuer.rstrip('/')}/.well-known/openid-configuration"
