"""What the processor tests drive: the sandbox as a real process, and a webhook receiver.

The sandbox runs as `python -m sandbox_processor` on a free port with its own SQLite file, exactly
as an operator starts it; the receiver is a plain HTTP server in a thread that records every
delivery and can be told to fail the first ones for a reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from tests.helpers import free_port, wait_until
from tests.servers import ROOT
from transaction_service.connectors.sandbox import SandboxConfig, SandboxConnector
from transaction_service.connectors.tls import tls_context

T = TypeVar("T")

# fast but faithful: the real 2 s of pm_card_slow, everything else shortened for the CI budget
FAST_ENV = {
    "SANDBOX_TIMEOUT_HOLD_SECONDS": "1.0",
    "SANDBOX_ASYNC_DELAY_SECONDS": "0.2",
    "SANDBOX_WEBHOOK_BACKOFF_SECONDS": "0.1",
    "SANDBOX_WEBHOOK_MAX_ATTEMPTS": "3",
    "SANDBOX_WEBHOOK_TIMEOUT_SECONDS": "2",
}


def get(url: str, **kwargs: Any) -> httpx.Response:
    """`httpx.get` with the connectors' shared TLS context: a new one per client costs ~150 ms."""
    return httpx.get(url, verify=tls_context(), **kwargs)


@dataclass
class Delivery:
    """One webhook POST as the receiver got it."""

    at: float
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        """The decoded event."""
        return dict(json.loads(self.body))

    @property
    def reference(self) -> str:
        """The merchant reference of the event's object."""
        return str(self.event["data"]["object"]["reference"])


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records deliveries; `fail[reference] = n` fails n of them."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.fail: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver._answer_for(body)
                with receiver._lock:
                    receiver.deliveries.append(Delivery(time.monotonic(), dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/sandbox"

    def _answer_for(self, body: bytes) -> int:
        try:
            reference = str(json.loads(body)["data"]["object"]["reference"])
        except (ValueError, KeyError, TypeError):
            return 400
        with self._lock:
            left = self.fail.get(reference, 0)
            if left:
                self.fail[reference] = left - 1
                return 500
        return 200

    def of(self, reference: str) -> list[Delivery]:
        """Deliveries for one reference, in arrival order."""
        with self._lock:
            return [d for d in self.deliveries if d.reference == reference]

    def wait_for(self, reference: str, count: int, seconds: float = 10.0) -> list[Delivery]:
        """The first `count` deliveries for `reference`, waiting for them to arrive."""
        assert wait_until(lambda: len(self.of(reference)) >= count, seconds), (
            f"{reference}: {len(self.of(reference))} of {count} deliveries after {seconds} s"
        )
        return self.of(reference)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class HttpProcess:
    """A `python -m MODULE` process answering HTTP: launched until ready, killed (-9) or stopped."""

    process: subprocess.Popen[bytes] | None
    log_path: Path

    def launch(self, module: str, env: dict[str, str], ready_url: str, timeout: float) -> None:
        """Start `module` (stderr to `log_path`, appended) and wait until `ready_url` answers 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"{module} exited {self.process.returncode}: {self.log_text()}"
            )
            try:
                if get(ready_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"{module} not ready at {ready_url} after {timeout} s: {self.log_text()[-2000:]}"
        )

    def log_text(self) -> str:
        """Everything the process has logged so far (kept across restarts)."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class Sandbox(HttpProcess):
    """`python -m sandbox_processor` on a free port; `kill()` is kill -9, `start()` again restarts it."""

    db_path: Path
    webhook_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    api_key: str = field(default_factory=lambda: f"sk_test_{uuid.uuid4().hex}", repr=False)
    webhook_secret: str = field(default_factory=lambda: f"whsec_{uuid.uuid4().hex}", repr=False)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    def __post_init__(self) -> None:
        self.log_path = self.db_path.with_suffix(".log")

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until /healthz answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
        env |= {
            "SANDBOX_PORT": str(self.port),
            "SANDBOX_API_KEY": self.api_key,
            "SANDBOX_WEBHOOK_SECRET": self.webhook_secret,
            "SANDBOX_DB_PATH": str(self.db_path),
            "SANDBOX_LOG_LEVEL": "DEBUG",
            **({"SANDBOX_WEBHOOK_URL": self.webhook_url} if self.webhook_url else {}),
            **self.env,
        }
        self.launch("sandbox_processor", env, f"{self.url}/healthz", timeout)

    def config(self, timeout: float = 10.0, **overrides: Any) -> SandboxConfig:
        """Connector settings for this sandbox."""
        return SandboxConfig(
            base_url=self.url,
            api_key=SecretStr(overrides.pop("api_key", self.api_key)),
            webhook_secret=SecretStr(overrides.pop("webhook_secret", self.webhook_secret)),
            timeout_seconds=timeout,
            **overrides,
        )

    def run(
        self, scenario: Callable[[SandboxConnector], Awaitable[T]], timeout: float = 10.0, **overrides: Any
    ) -> T:
        """Run `scenario` with a fresh connector on a fresh event loop (closed afterwards)."""

        async def _go() -> T:
            connector = SandboxConnector(self.config(timeout, **overrides))
            try:
                return await scenario(connector)
            finally:
                await connector.aclose()

        return asyncio.run(_go())

    def http(self) -> httpx.Client:
        """A raw, authenticated HTTP client, for what the connector never sends."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, verify=tls_context())
