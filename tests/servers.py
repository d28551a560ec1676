"""What the suite's servers run with: paths, roles, fast hashing, settings, and service processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payments_common.config import AuthSettings, TransactionSettings
from tests.helpers import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
AUTH_ROLE, TX_ROLE = "payments_auth_svc", "payments_tx_svc"
TX_SERVICE = "payments.transaction.v1.TransactionService"
# fast hashing parameters keep the suite quick; production defaults are in config.py
FAST_HASH = {"password_time_cost": 1, "password_memory_kib": 8192}
# subprocesses: fast hashing, and no fixed metrics port that another process may hold
FAST_HASH_ENV = {k.upper(): str(v) for k, v in FAST_HASH.items()} | {
    "AUTH_METRICS_PORT": "0",
    "TRANSACTION_METRICS_PORT": "0",
    # the whole session logs in (and fails on purpose) from 127.0.0.1 against one database
    "LOGIN_PEER_MAX_FAILURES": "1000000",
    "REGISTER_PEER_MAX": "1000000",
}


def migrate(url: str) -> None:
    """Migrate the database of `url` to head with Alembic (the same command operators run)."""
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


def auth_settings(database_url: str, **overrides: Any) -> AuthSettings:
    """Auth settings for an in-process server on a free port."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "database_role": AUTH_ROLE,
        "auth_port": 0,
        "auth_metrics_port": 0,
        "grpc_host": "127.0.0.1",
        "login_peer_max_failures": 10_000,
        "register_peer_max": 1_000_000,  # the suite registers thousands of users from one address
        "shutdown_grace_seconds": 1.0,
        "signing_key_cache_seconds": 0.2,
        **FAST_HASH,
        **overrides,
    }
    return AuthSettings(_env_file=None, **values)  # type: ignore[call-arg]


def tx_settings(database_url: str, auth_address: str = "", **overrides: Any) -> TransactionSettings:
    """Transaction settings for an in-process server on a free port."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "database_role": TX_ROLE,
        "transaction_port": 0,
        "transaction_metrics_port": 0,
        "grpc_host": "127.0.0.1",
        "auth_service_addr": auth_address,
        "jwks_min_refresh_seconds": 0.05,  # forged kids wait for the next refresh: keep it short
        "shutdown_grace_seconds": 1.0,
        "payment_processor": "sandbox",  # payments with a payment_method are queued for it
        **overrides,
    }
    return TransactionSettings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class ServiceProcess:
    """`python -m transaction_service` as operators run it, so that it can be killed for real."""

    database_url: str
    auth_address: str
    port: int
    extra_env: dict[str, str]
    proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its health says SERVING."""
        env = {
            **os.environ,
            **FAST_HASH_ENV,
            "DATABASE_URL": self.database_url,
            "DATABASE_ROLE": TX_ROLE,
            "TRANSACTION_PORT": str(self.port),
            "TRANSACTION_METRICS_PORT": "0",
            "AUTH_SERVICE_ADDR": self.auth_address,
            "GRPC_HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "transaction_service"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_healthy(self.address, TX_SERVICE, timeout=timeout)

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
