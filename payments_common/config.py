"""Settings from the environment (and an optional `.env`), validated once at start-up."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "please-change-me"}
MIN_HS256_SECRET_BYTES = 32


class CommonSettings(BaseSettings):
    """Settings both services read; names match the environment variables (upper-cased)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset means the embedded dev server"
    )
    database_role: str | None = Field(
        default=None, description="role to assume after connecting (SET ROLE), for shared login users"
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, ge=100)
    # off behind a transaction-pooling PgBouncer, which cannot keep a session's prepared statements
    db_prepared_statements: bool = True

    algorithm: Literal["EdDSA", "ES256", "HS256"] = "EdDSA"
    secret_key: SecretStr | None = None
    token_issuer: str = "payments-auth"
    token_audience: str = "payments"
    token_leeway_seconds: int = Field(default=5, ge=0, le=120)

    grpc_host: str = "[::]"
    grpc_max_workers: int = Field(default=16, ge=1, le=512)
    grpc_max_concurrent_rpcs: int = Field(default=256, ge=1)
    grpc_max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    reflection_enabled: bool = True
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    health_check_interval_seconds: float = Field(default=2.0, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _check_secrets(self) -> CommonSettings:
        if self.algorithm == "HS256":
            if self.secret_key is None:
                raise ValueError("SECRET_KEY: required when ALGORITHM=HS256")
            raw = self.secret_key.get_secret_value()
            if raw.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("SECRET_KEY: is a placeholder; generate one with `openssl rand -hex 32`")
            if len(raw.encode()) < MIN_HS256_SECRET_BYTES:
                raise ValueError(f"SECRET_KEY: must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE")
        return self


class AuthSettings(CommonSettings):
    """Settings of the auth service."""

    auth_port: int = Field(default=50051, ge=0, le=65535)
    auth_metrics_port: int | None = Field(default=9101, ge=0, le=65535, description="unset: no /metrics")
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=14 * 86400, ge=60)
    login_max_failures: int = Field(default=5, ge=1)
    login_peer_max_failures: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: float = Field(default=30.0, gt=0)
    login_lockout_max_seconds: float = Field(default=900.0, gt=0)
    signing_key_cache_seconds: float = Field(default=10.0, ge=0)
    password_time_cost: int = Field(default=2, ge=1)
    password_memory_kib: int = Field(default=19456, ge=1024)
    password_parallelism: int = Field(default=1, ge=1)


class TransactionSettings(CommonSettings):
    """Settings of the transaction service."""

    transaction_port: int = Field(default=50052, ge=0, le=65535)
    transaction_metrics_port: int | None = Field(
        default=9102, ge=0, le=65535, description="unset: no /metrics"
    )
    auth_service_addr: str = "localhost:50051"
    auth_service_ca_file: Path | None = Field(
        default=None, description="CA of the auth service's TLS certificate"
    )
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    page_token_key: SecretStr | None = None


S = TypeVar("S", bound=BaseSettings)


def describe_error(err: ValidationError) -> str:
    """One line naming the first bad setting, without echoing its value."""
    first = err.errors()[0]
    message = str(first.get("msg", "invalid"))
    location = ".".join(str(p) for p in first.get("loc", ()))
    if location:
        return f"{location.upper()}: {message}"
    return message.removeprefix("Value error, ")


def load_settings(cls: type[S]) -> S:
    """Build settings or stop the process with one clear line (never a traceback)."""
    try:
        return cls()
    except ValidationError as err:
        print(f"configuration error: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(2) from None
