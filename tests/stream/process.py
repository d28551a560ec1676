"""`python -m transaction_service` as operators run it, so that a test can kill it for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port, wait_healthy
from tests.stream.servers import process_env

ROOT = Path(__file__).resolve().parents[2]
FAST_HASH_ENV = {"PASSWORD_TIME_COST": "1", "PASSWORD_MEMORY_KIB": "8192"}


class TransactionProcess:
    """One service process on a fixed port: start, kill -9, start again on the same port."""

    def __init__(self, database_url: str, auth_address: str):
        self.port = free_port()
        self._env = {**os.environ, **FAST_HASH_ENV, **process_env(database_url, auth_address, self.port)}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until its health says SERVING."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "transaction_service"],
            cwd=ROOT,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_healthy(self.address, "payments.transaction.v1.TransactionService", timeout=30)

    def kill(self) -> None:
        """kill -9: no drain, no closing of anything."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
