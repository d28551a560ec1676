"""Transaction servers for the change-stream tests: short intervals, and a fixed token key."""

from __future__ import annotations

from typing import Any

from payments_common.config import AuthSettings, TransactionSettings

TX_ROLE = "payments_tx_svc"
# resume tokens must survive a restart of the service (and be valid on every server of a test)
TOKEN_KEY = "stream-tests-token-key-0123456789abcdef"
QUICK = {
    "watch_poll_interval_seconds": 0.2,
    "watch_account_check_seconds": 0.3,
}


def stream_settings(database_url: str, auth_address: str, **overrides: Any) -> TransactionSettings:
    """Settings of an in-process transaction server on a free port, quick to notice changes."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "database_role": TX_ROLE,
        "transaction_port": 0,
        "transaction_metrics_port": None,
        "grpc_host": "127.0.0.1",
        "auth_service_addr": auth_address,
        "jwks_min_refresh_seconds": 0.5,
        "shutdown_grace_seconds": 1.0,
        "page_token_key": TOKEN_KEY,
        **QUICK,
        **overrides,
    }
    return TransactionSettings(_env_file=None, **values)  # type: ignore[call-arg]


def process_env(database_url: str, auth_address: str, port: int) -> dict[str, str]:
    """The environment of `python -m transaction_service` for the same setup."""
    return {
        "DATABASE_URL": database_url,
        "DATABASE_ROLE": TX_ROLE,
        "TRANSACTION_PORT": str(port),
        "TRANSACTION_METRICS_PORT": "0",
        "AUTH_SERVICE_ADDR": auth_address,
        "GRPC_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "PAGE_TOKEN_KEY": TOKEN_KEY,
        **{name.upper(): str(value) for name, value in QUICK.items()},
    }


def auth_settings_for(database_url: str, **overrides: Any) -> AuthSettings:
    """Settings of an in-process auth server on a database of a test's own (fast hashing)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "database_role": "payments_auth_svc",
        "auth_port": 0,
        "auth_metrics_port": None,
        "grpc_host": "127.0.0.1",
        "password_time_cost": 1,
        "password_memory_kib": 8192,
        "shutdown_grace_seconds": 1.0,
        **overrides,
    }
    return AuthSettings(_env_file=None, **values)  # type: ignore[call-arg]
