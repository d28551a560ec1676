"""Settings of the sandbox processor, from `SANDBOX_*` environment variables (or `.env`).

The prefix keeps them apart from the services' settings: the dev runner hands one environment to
every process, and `PORT` or `API_KEY` alone would be ambiguous there.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SANDBOX_"
MIN_SECRET_CHARS = 16
PLACEHOLDERS = {"changeme", "change-me", "secret", "please-change-me", "sk_test_xxx", "whsec_xxx"}


class SandboxSettings(BaseSettings):
    """Everything the sandbox reads at start-up; field names are the variables without the prefix."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=50060, ge=0, le=65535)
    api_key: SecretStr = Field(description="clients send it as `Authorization: Bearer <key>`")
    webhook_secret: SecretStr = Field(description="HMAC key of the Sandbox-Signature header")
    webhook_url: HttpUrl | None = Field(default=None, description="unset: events are recorded, not sent")
    db_path: Path = Path(".data/sandbox/sandbox.sqlite3")
    slow_seconds: float = Field(default=2.0, ge=0, le=120)
    latency_ms: int = Field(default=0, ge=0, le=10_000)  # added to every /v1 answer
    timeout_hold_seconds: float = Field(default=30.0, gt=0, le=600)
    async_delay_seconds: float = Field(default=1.0, ge=0, le=600)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=1.0, gt=0, le=3600)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("api_key", "webhook_secret")
    @classmethod
    def _strong(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw.lower() in PLACEHOLDERS:
            raise ValueError("is a placeholder; generate one with `openssl rand -hex 24`")
        if len(raw) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
        return value


def describe_error(err: ValidationError) -> str:
    """One line naming the first bad variable (with its prefix), never echoing its value."""
    first = err.errors()[0]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "not set"
    location = ".".join(str(part) for part in first.get("loc", ()))
    return f"{ENV_PREFIX}{location.upper()}: {message}" if location else message


def load_settings() -> SandboxSettings:
    """Build the settings or stop with one clear line (exit code 2), never a traceback."""
    try:
        return SandboxSettings()  # type: ignore[call-arg]  # required fields come from the environment
    except ValidationError as err:
        print(f"configuration error: {describe_error(err)}", file=sys.stderr)
        raise SystemExit(2) from None
