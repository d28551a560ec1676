"""Settings from the environment (and an optional `.env`), validated once at start-up."""

from __future__ import annotations

import re
import sys
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "please-change-me"}
MIN_HS256_SECRET_BYTES = 32
DEFAULT_WATCHERS = 128  # open WatchTransactions streams per process when WATCH_MAX_WATCHERS is unset


def _otlp_url(value: object) -> object:
    """An OTLP/HTTP endpoint (the OpenTelemetry SDKs' OTEL_EXPORTER_OTLP_* variables); blank is unset."""
    if not value:
        return None
    if isinstance(value, str) and not re.match(r"https?://[^/\s]+", value):
        raise ValueError(
            "must be the http:// or https:// URL of an OTLP/HTTP receiver, e.g. http://otel:4318"
        )
    return value


OtlpUrl = Annotated[str | None, BeforeValidator(_otlp_url)]


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

    # server processes sharing the port (SO_REUSEPORT), each with its own pool, threads and caches
    processes: int = Field(default=1, ge=1, le=64)
    grpc_host: str = "[::]"
    grpc_max_workers: int = Field(default=16, ge=1, le=512)
    # calls at once per process, counting calls that have sent headers and no message yet: above
    # the 1,000 such calls that 10 connections may hold (GRPC_MAX_CONCURRENT_STREAMS each)
    grpc_max_concurrent_rpcs: int = Field(default=2048, ge=1)
    # 2.3 times the largest valid message (a ~110 KB transaction); a response stuck behind a
    # client that never reads holds about three times this (tests/README.md, transport)
    grpc_max_message_bytes: int = Field(default=256 * 1024, ge=1024)
    # HTTP/2, per connection: what one peer may hold, and for how long (issue 16)
    grpc_max_concurrent_streams: int = Field(default=100, ge=1)
    grpc_max_metadata_bytes: int = Field(default=16 * 1024, ge=1024)
    grpc_max_connection_idle_seconds: float = Field(default=60.0, gt=0)
    # a connection is closed (GOAWAY) after this long, gRPC adding up to 10 % jitter, so clients
    # resolve again and spread over new replicas; its calls get SHUTDOWN_GRACE_SECONDS to finish
    grpc_max_connection_age_seconds: float = Field(default=300.0, gt=0)
    reflection_enabled: bool = True
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    health_check_interval_seconds: float = Field(default=2.0, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # tracing (payments_common/tracing.py): off unless one of these is set; the SDK reads the other OTEL_*
    otel_exporter_otlp_endpoint: OtlpUrl = None  # base URL: traces go to its /v1/traces
    otel_exporter_otlp_traces_endpoint: OtlpUrl = None  # the full URL, used as it is
    otel_service_name: str = Field(default="payments", min_length=1)

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
    otel_service_name: str = Field(default="auth_service", min_length=1)
    auth_metrics_port: int | None = Field(default=9101, ge=0, le=65535, description="unset: no /metrics")
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=14 * 86400, ge=60)
    login_max_failures: int = Field(default=5, ge=1)
    login_account_max_failures: int = Field(default=100, ge=1)
    login_peer_max_failures: int = Field(default=50, ge=1)
    register_peer_max: int = Field(default=30, ge=1)
    register_window_seconds: int = Field(default=3600, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: float = Field(default=30.0, gt=0)
    login_lockout_max_seconds: float = Field(default=900.0, gt=0)
    signing_key_cache_seconds: float = Field(default=10.0, ge=0)
    password_time_cost: int = Field(default=2, ge=1)
    password_memory_kib: int = Field(default=19456, ge=1024)
    password_parallelism: int = Field(default=1, ge=1)
    # hashes at once (each holds PASSWORD_MEMORY_KIB); unset: the CPUs this process may use
    password_hash_concurrency: int | None = Field(default=None, ge=1, le=256)
    password_hash_wait_seconds: float = Field(default=5.0, gt=0)
    # peers (addresses or networks, comma-separated) whose `x-forwarded-for` names the client
    # that throttles count: the dashboard's; unset: every caller counts as its own address
    trusted_proxies: str = ""

    @property
    def trusted_proxy_networks(self) -> list[IPv4Network | IPv6Network]:
        """`TRUSTED_PROXIES` parsed (validated at start-up)."""
        return [
            ip_network(part.strip(), strict=False) for part in self.trusted_proxies.split(",") if part.strip()
        ]

    @model_validator(mode="after")
    def _check_trusted_proxies(self) -> AuthSettings:
        try:
            self.trusted_proxy_networks  # noqa: B018
        except ValueError:
            raise ValueError("TRUSTED_PROXIES: must be IP addresses or networks, comma-separated") from None
        return self


class TransactionSettings(CommonSettings):
    """Settings of the transaction service."""

    transaction_port: int = Field(default=50052, ge=0, le=65535)
    otel_service_name: str = Field(default="transaction_service", min_length=1)
    transaction_metrics_port: int | None = Field(
        default=9102, ge=0, le=65535, description="unset: no /metrics"
    )
    auth_service_addr: str = "localhost:50051"
    auth_service_ca_file: Path | None = Field(
        default=None, description="CA of the auth service's TLS certificate"
    )
    jwks_min_refresh_seconds: float = Field(default=1.0, ge=0)
    jwks_refresh_seconds: float = Field(default=300.0, gt=0)
    page_token_key: SecretStr | None = None
    # the processor that charges payments created with a payment_method (its worker: python -m
    # transaction_service.processing); unset: such payments are refused, FAILED_PRECONDITION
    payment_processor: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    # WatchTransactions (the change stream); WATCH_MAX_WATCHERS unset: 128, at most half the call slots
    watch_max_watchers: int | None = Field(default=None, ge=1)
    watch_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    watch_retention_seconds: int = Field(default=7 * 86400, ge=1)
    watch_account_check_seconds: float = Field(default=5.0, gt=0)

    @property
    def watch_limit(self) -> int:
        """Open watch streams per process: each holds a call slot, so unary calls always keep some."""
        if self.watch_max_watchers is not None:
            return self.watch_max_watchers
        return max(1, min(DEFAULT_WATCHERS, self.grpc_max_concurrent_rpcs // 2))

    @model_validator(mode="after")
    def _check_page_token_key(self) -> TransactionSettings:
        if self.processes > 1 and self.page_token_key is None:
            raise ValueError(
                "PAGE_TOKEN_KEY: required when PROCESSES > 1: each process would sign page and resume"
                " tokens with a random key of its own, and a token from one process would fail on another"
            )
        return self

    @model_validator(mode="after")
    def _check_watchers(self) -> TransactionSettings:
        if self.watch_max_watchers is not None and self.watch_max_watchers >= self.grpc_max_concurrent_rpcs:
            raise ValueError(
                "WATCH_MAX_WATCHERS: must be below GRPC_MAX_CONCURRENT_RPCS, so that watchers never hold"
                " every call slot"
            )
        return self


S = TypeVar("S", bound=BaseSettings)


def describe_error(err: ValidationError) -> str:
    """One line naming the first bad setting, without echoing its value."""
    first = err.errors()[0]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    location = ".".join(str(p) for p in first.get("loc", ()))
    return f"{location.upper()}: {message}" if location else message


def load_settings(cls: type[S]) -> S:
    """Build settings or stop the process with one clear line (never a traceback)."""
    try:
        return cls()
    except ValidationError as err:
        print(f"configuration error: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(2) from None
