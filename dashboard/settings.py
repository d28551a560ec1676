"""Settings of the dashboard, from the environment (and an optional `.env`), like the services'."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from payments_common.config import PLACEHOLDER_SECRETS

MIN_SESSION_SECRET_BYTES = 32
_DASHBOARD_PLACEHOLDERS = PLACEHOLDER_SECRETS | {"dashboard-secret", "session-secret", "dev", "test"}


class DashboardSettings(BaseSettings):
    """What `python -m dashboard` reads; names match the environment variables (upper-cased)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8080, ge=0, le=65535)
    auth_service_addr: str = "localhost:50051"
    transaction_service_addr: str = "localhost:50052"
    # TLS towards the two services: the CA that signed their certificates (and, for mTLS, ours)
    dashboard_grpc_ca_file: Path | None = None
    dashboard_grpc_client_cert_file: Path | None = None
    dashboard_grpc_client_key_file: Path | None = None
    dashboard_grpc_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    # signs the session reference in the cookie and the login form's CSRF token
    dashboard_session_secret: SecretStr | None = None
    dashboard_session_idle_seconds: int = Field(default=1800, ge=60)
    dashboard_session_max_seconds: int = Field(default=12 * 3600, ge=300)
    dashboard_max_sessions: int = Field(default=10_000, ge=1)

    # HTTPS served by the dashboard itself; without it, plaintext (behind a TLS proxy, or dev)
    dashboard_tls_cert_file: Path | None = None
    dashboard_tls_key_file: Path | None = None
    # unset: Secure cookies exactly when the dashboard serves TLS; true behind a TLS proxy
    dashboard_secure_cookies: bool | None = None

    dashboard_page_size: int = Field(default=25, ge=1, le=500)
    dashboard_summary_max_rows: int = Field(default=5000, ge=100, le=100_000)
    dashboard_locale: str = "en"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @property
    def serves_tls(self) -> bool:
        """True when the dashboard itself serves HTTPS."""
        return self.dashboard_tls_cert_file is not None

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry the Secure attribute."""
        if self.dashboard_secure_cookies is None:
            return self.serves_tls
        return self.dashboard_secure_cookies

    @property
    def session_secret(self) -> bytes:
        """The secret as bytes (validated to be present)."""
        assert self.dashboard_session_secret is not None
        return self.dashboard_session_secret.get_secret_value().encode()

    @model_validator(mode="after")
    def _check(self) -> DashboardSettings:
        if self.dashboard_session_secret is None:
            raise ValueError("DASHBOARD_SESSION_SECRET: required; generate one with `openssl rand -hex 32`")
        raw = self.dashboard_session_secret.get_secret_value()
        if raw.lower() in _DASHBOARD_PLACEHOLDERS:
            raise ValueError(
                "DASHBOARD_SESSION_SECRET: is a placeholder; generate one with `openssl rand -hex 32`"
            )
        if len(raw.encode()) < MIN_SESSION_SECRET_BYTES:
            raise ValueError(f"DASHBOARD_SESSION_SECRET: must be at least {MIN_SESSION_SECRET_BYTES} bytes")
        if (self.dashboard_tls_cert_file is None) != (self.dashboard_tls_key_file is None):
            raise ValueError(
                "DASHBOARD_TLS_CERT_FILE: DASHBOARD_TLS_CERT_FILE and DASHBOARD_TLS_KEY_FILE go together"
            )
        if (self.dashboard_grpc_client_cert_file is None) != (self.dashboard_grpc_client_key_file is None):
            raise ValueError(
                "DASHBOARD_GRPC_CLIENT_CERT_FILE: the client certificate and its key go together"
            )
        if self.dashboard_grpc_client_cert_file is not None and self.dashboard_grpc_ca_file is None:
            raise ValueError("DASHBOARD_GRPC_CLIENT_CERT_FILE: needs DASHBOARD_GRPC_CA_FILE")
        if self.dashboard_session_idle_seconds > self.dashboard_session_max_seconds:
            raise ValueError("DASHBOARD_SESSION_IDLE_SECONDS: must not exceed DASHBOARD_SESSION_MAX_SECONDS")
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(self.dashboard_locale)
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"DASHBOARD_LOCALE: unknown locale {self.dashboard_locale!r}") from None
        return self
