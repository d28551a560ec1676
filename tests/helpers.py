"""Small helpers shared by the tests: a logged-in caller, error details, waiting, ports, log watching."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, text

from payments_client.errors import status_details
from payments_common.logs import JsonFormatter


@dataclass
class Caller:
    """A logged-in user or service principal as the tests see it."""

    id: str
    email: str = ""
    password: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the access token."""
        return (("authorization", f"Bearer {self.access_token}"),)


# the client package already decodes google.rpc details; the tests read errors the same way
details_of = status_details


def wait_until(check: Callable[[], bool], seconds: float = 10.0, step: float = 0.05) -> bool:
    """Poll `check` until it is true or `seconds` pass; the final answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def waiting_on_locks(db_engine: Engine) -> int:
    """How many of the transaction service's statements wait on a lock right now."""
    with db_engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'transaction_service' AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server to bind next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# a server that is still starting refuses connections: retry them quickly, not with the 1 s+ default
_QUICK_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 250)]


def wait_healthy(address: str, service: str = "", timeout: float = 20.0) -> None:
    """Poll grpc.health.v1 `Check(service)` at `address` (plaintext) until it answers SERVING.

    Connection errors and other statuses are retried; after `timeout` seconds an AssertionError
    names the last status or error.
    """
    deadline = time.monotonic() + timeout
    request = health_pb2.HealthCheckRequest(service=service)
    last = "no answer"
    with grpc.insecure_channel(address, options=_QUICK_RECONNECT) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            remaining = deadline - time.monotonic()
            try:
                status = stub.Check(request, timeout=max(0.1, min(2.0, remaining))).status
            except grpc.RpcError as err:
                last = f"{err.code().name}: {err.details()}"  # type: ignore[attr-defined]
            else:
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            if remaining <= 0:
                raise AssertionError(f"{address} health {service!r} not SERVING after {timeout} s: {last}")
            time.sleep(0.05)


class SecretWatch(logging.Handler):
    """Collects every log line of the session and the secrets the tests handed out."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.secrets: set[str] = set()
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def leaks(self, extra_text: str = "") -> list[str]:
        """Secrets that appear in any collected line (or in `extra_text`)."""
        corpus = "\n".join(self.lines) + extra_text
        return sorted(s[:6] + "…" for s in self.secrets if len(s) >= 8 and s in corpus)
