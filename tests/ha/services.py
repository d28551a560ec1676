"""The services as operators run them (`python -m ...`), with PROCESSES workers, and their figures.

Used by tests/ha (a Patroni cluster behind a multi-host URL) and by
tests/platform/test_worker_processes.py (PROCESSES=2 on the suite's PostgreSQL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from tests.helpers import free_port, wait_healthy
from tests.servers import AUTH_ROLE, FAST_HASH_ENV, ROOT, TX_ROLE, TX_SERVICE

AUTH_SERVICE = "payments.auth.v1.AuthService"
# a channel of its own TCP connection: grpc shares one connection between equal channels, and
# each connection lands on one worker (SO_REUSEPORT spreads connections, not calls)
OWN_CONNECTION = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports (one /metrics port per worker)."""
    for _ in range(100):
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError(f"no {count} consecutive free ports")


@dataclass
class Service:
    """One service instance (`module`) with its environment; its log goes to `log_path`."""

    module: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def health_name(self) -> str:
        return AUTH_SERVICE if self.module == "auth_service" else TX_SERVICE

    @property
    def metrics_ports(self) -> list[int]:
        """The /metrics port of each worker (the configured one plus the worker's index)."""
        key = "AUTH_METRICS_PORT" if self.module == "auth_service" else "TRANSACTION_METRICS_PORT"
        base = int(self.env[key])
        return [base + i for i in range(int(self.env.get("PROCESSES", "1")))]

    def start(self, timeout: float = 60.0, wait: bool = True) -> Service:
        """Start the process; with `wait`, until its health says SERVING."""
        key = "AUTH_PORT" if self.module == "auth_service" else "TRANSACTION_PORT"
        env = {**os.environ, **self.env, key: str(self.port)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log
            )
        if wait:
            wait_healthy(self.address, self.health_name, timeout=timeout)
        return self

    def workers(self) -> list[int]:
        """The pids of the worker processes (none with PROCESSES=1)."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the exit status (killed after `timeout`: None)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far (other lines are kept as {"raw": ...})."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"raw": raw})
        return lines

    def handled(self) -> list[float]:
        """RPCs each worker has completed, read from its own /metrics."""
        return [_handled_total(port) for port in self.metrics_ports]

    def channel(self) -> grpc.Channel:
        """A plaintext channel on a connection of its own (so on one worker, by chance)."""
        return grpc.insecure_channel(self.address, options=OWN_CONNECTION)

    def channel_per_worker(self, probe: Callable[[grpc.Channel], None]) -> list[grpc.Channel]:
        """A channel to each worker: new connections, each `probe`d, until every worker took one.

        The worker whose /metrics counted the probe is the one that holds the connection.
        """
        found: dict[int, grpc.Channel] = {}
        for _ in range(20 * len(self.metrics_ports)):
            channel = self.channel()
            before = self.handled()
            probe(channel)
            grew = [i for i, (old, new) in enumerate(zip(before, self.handled(), strict=True)) if new > old]
            if len(grew) == 1 and grew[0] not in found:  # more than one: another caller's call
                found[grew[0]] = channel
                if len(found) == len(self.metrics_ports):
                    return [found[i] for i in range(len(found))]
            else:
                channel.close()
        raise AssertionError(f"connections did not reach every worker: {sorted(found)}")


def _handled_total(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("grpc_server_handled_total{")
    )


def common_env(database_url: str, processes: int, log_level: str = "INFO") -> dict[str, str]:
    """What every test instance runs with: fast hashing, loopback, quick health and drain."""
    return {
        **FAST_HASH_ENV,
        "DATABASE_URL": database_url,
        "PROCESSES": str(processes),
        "GRPC_HOST": "127.0.0.1",
        "LOG_LEVEL": log_level,
        "HEALTH_CHECK_INTERVAL_SECONDS": "0.5",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }


def auth_service(database_url: str, log_dir: Path, processes: int = 1, **env: str) -> Service:
    """An auth service instance (not started), its /metrics on consecutive free ports."""
    values = {
        **common_env(database_url, processes),
        "DATABASE_ROLE": AUTH_ROLE,
        "AUTH_METRICS_PORT": str(free_port_run(processes)),
        "LOGIN_PEER_MAX_FAILURES": "10000",
        "REGISTER_PEER_MAX": "100000",
        **env,
    }
    return Service("auth_service", values, log_dir / f"auth-{time.monotonic_ns()}.log")


def transaction_service(
    database_url: str, auth_address: str, log_dir: Path, processes: int = 1, **env: str
) -> Service:
    """A transaction service instance (not started) that fetches keys from `auth_address`."""
    values = {
        **common_env(database_url, processes),
        "DATABASE_ROLE": TX_ROLE,
        "AUTH_SERVICE_ADDR": auth_address,
        "TRANSACTION_METRICS_PORT": str(free_port_run(processes)),
        "JWKS_MIN_REFRESH_SECONDS": "0.05",
        "PAGE_TOKEN_KEY": "page-token-key-shared-by-every-worker-of-the-test",
        **env,
    }
    return Service("transaction_service", values, log_dir / f"tx-{time.monotonic_ns()}.log")


def server_errors(*services: Service) -> list[str]:
    """Log lines that show a bug: an unhandled error, a traceback, an UNKNOWN/INTERNAL answer."""
    found = []
    for service in services:
        for line in service.log_lines():
            text = json.dumps(line)
            if (
                "unhandled error" in text
                or "Traceback" in text
                or line.get("rpc_code") in ("UNKNOWN", "INTERNAL")
            ):
                found.append(f"{service.module}: {text[:400]}")
    return found
