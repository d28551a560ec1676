"""Fixtures of the dashboard tests: the real `python -m dashboard` process in front of the real
servers of tests/conftest.py, and a real headless Chromium (Debian's) driven by Playwright.

Playwright cannot download its own browser here, so it launches the system's Chromium
(`DASHBOARD_TEST_CHROMIUM`, else `chromium` on the PATH); `make test` installs it when missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, SecretWatch, free_port
from tests.servers import ROOT

PAGE_SIZE = 3  # small pages, so that paging shows with a handful of rows


@dataclass
class Dashboard:
    """A running dashboard process and where its log goes."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_up(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, ca: Path | None, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited ({proc.returncode}): {log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context) as reply:  # noqa: S310
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the dashboard did not answer within {timeout} s: {log_path.read_text()}")


@contextlib.contextmanager
def running_dashboard(
    auth_address: str, tx_address: str, *, ca: Path | None = None, **extra_env: str
) -> Iterator[Dashboard]:
    """`python -m dashboard` on a free port in front of the given servers, stopped afterwards.

    With `ca` it serves HTTPS (`extra_env` names the certificate) at https://localhost:PORT.
    """
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="dashboard-log-")) / "dashboard.log"
    env = {
        **os.environ,
        "DASHBOARD_HOST": "127.0.0.1",
        "DASHBOARD_PORT": str(port),
        "AUTH_SERVICE_ADDR": auth_address,
        "TRANSACTION_SERVICE_ADDR": tx_address,
        "DASHBOARD_SESSION_SECRET": secrets.token_hex(32),
        "DASHBOARD_PAGE_SIZE": str(PAGE_SIZE),
        "LOG_LEVEL": "INFO",
        **extra_env,
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard"], cwd=ROOT, env=env, stderr=log, stdout=log
        )
    url = f"https://localhost:{port}" if ca else f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc, log_path, ca)
        yield Dashboard(url, proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def dashboard(auth_address: str, tx_address: str, secret_watch: SecretWatch) -> Iterator[Dashboard]:
    """The dashboard of these tests, talking to the suite's auth and transaction servers.

    At the end, its log must not hold any password or token the suite handed out.
    """
    with running_dashboard(auth_address, tx_address) as running:
        yield running
    leaks = secret_watch.leaks(extra_text=running.log())
    assert not leaks, f"the dashboard logged secrets: {leaks}"


def chromium_path() -> str:
    """The system Chromium Playwright drives."""
    path = os.environ.get("DASHBOARD_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            "no Chromium: install Debian's `chromium` (make test does) or set DASHBOARD_TEST_CHROMIUM"
        )
    return path


@pytest.fixture(scope="package")  # the sync API keeps an event loop running: end it with the package
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (each test gets its own context: its own cookies)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    """A fresh browser profile; CSP violations and page errors are collected on `context.problems`."""
    ctx = browser.new_context(base_url=dashboard.url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)  # generous: a busy 2-core CI machine; passing runs never wait for it
    problems: list[str] = []
    ctx.problems = problems

    def watch(page: Any) -> None:
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))

    ctx.on("page", watch)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    """A page of the fresh profile."""
    return context.new_page()


@pytest.fixture
def log_in(dashboard: Dashboard) -> Callable[..., None]:
    """Log `caller` in and open the list: through the form as a person does (`via_form`), or by
    posting that same form from the page's own request context (same cookies, one page load less)."""

    def _log_in(page: Any, caller: Caller, *, via_form: bool = False) -> None:
        if via_form:
            page.goto("/login")
            page.get_by_label("Email").fill(caller.email)
            page.get_by_label("Password").fill(caller.password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/transactions")
            return
        form = page.request.get("/login").text()
        token = re.search(r'name="login_token" value="([^"]+)"', form)
        assert token is not None
        fields = {"email": caller.email, "password": caller.password, "login_token": token.group(1)}
        answer = page.request.post("/login", form={**fields, "next": "/transactions"}, max_redirects=0)
        assert answer.status == 303, answer.text()
        page.goto("/transactions")

    return _log_in


@pytest.fixture
def create(tx_stub: Any) -> Callable[..., pb.Transaction]:
    """Create a payment over gRPC as `caller` (another client than the browser)."""

    def _create(
        caller: Caller, amount_minor: int = 1000, currency: str = "EUR", description: str = ""
    ) -> Any:
        request = pb.CreateTransactionRequest(
            type=pb.TRANSACTION_TYPE_PAYMENT,
            amount_minor=amount_minor,
            currency=currency,
            description=description,
            idempotency_key=secrets.token_hex(8),
        )
        return tx_stub.CreateTransaction(request, metadata=caller.md).transaction

    return _create


@pytest.fixture
def settle(tx_stub: Any, settle_client: Caller) -> Callable[..., Any]:
    """Complete (or fail) a transaction as the settlement service."""

    def _settle(tx_id: str, status: int = pb.TRANSACTION_STATUS_COMPLETED) -> Any:
        request = pb.UpdateTransactionStatusRequest(id=tx_id, status=status, reason="settled by test")
        return tx_stub.UpdateTransactionStatus(request, metadata=settle_client.md).transaction

    return _settle


@pytest.fixture
def alice(new_user: Callable[..., Caller]) -> Caller:
    """A fresh user whose dashboard is under test."""
    return new_user()


@pytest.fixture
def bob(new_user: Callable[..., Caller]) -> Caller:
    """Another fresh user, whose transactions alice must not see."""
    return new_user()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed browser test shows the dashboard's last log lines too (what the server saw)."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("dashboard")
    if report.failed and isinstance(running, Dashboard):
        report.sections.append(("dashboard log (last lines)", "\n".join(running.log().splitlines()[-40:])))
