"""The sandbox as a process: its storage survives kill -9, and bad settings stop it with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sandbox_processor.dev import DEV_API_KEY, start_for_dev
from tests.helpers import free_port, wait_until
from tests.processor.harness import Receiver, Sandbox, get
from tests.servers import ROOT
from transaction_service.connectors import Outcome, PaymentRequest, ProcessorResult
from transaction_service.connectors.sandbox import SandboxConnector


def test_charges_keys_and_pending_webhooks_survive_kill_9(
    own_sandbox: Callable[..., Sandbox], receiver: Receiver
) -> None:
    # one process for both checks: each start costs about half a second of the CI budget
    sandbox = own_sandbox(SANDBOX_ASYNC_DELAY_SECONDS="1.5")
    charged = PaymentRequest(uuid.uuid4(), 4200, "EUR", "pm_card_visa")
    pending = PaymentRequest(uuid.uuid4(), 100, "EUR", "pm_card_async")

    async def submit(connector: SandboxConnector) -> list[ProcessorResult]:
        return [await connector.submit_payment(charged), await connector.submit_payment(pending)]

    async def lookup(connector: SandboxConnector) -> ProcessorResult:
        return await connector.get_payment(charged.transaction_id)

    before, processing = sandbox.run(submit)
    assert (before.outcome, processing.outcome) == (Outcome.APPROVED, Outcome.PROCESSING)
    sandbox.kill()  # kill -9, before the async result was due
    assert receiver.of(pending.reference) == []
    sandbox.start()
    after = sandbox.run(lookup)
    assert (after.outcome, after.processor_id) == (Outcome.APPROVED, before.processor_id)
    retried, _ = sandbox.run(submit)  # the saved answers survived too: a retry is no second charge
    assert retried.processor_id == before.processor_id and retried.raw == before.raw
    [delivery] = receiver.wait_for(pending.reference, 1)  # the outbox survived: sent after the restart
    assert delivery.event["type"] == "charge.succeeded"


def run_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m sandbox_processor` with exactly these SANDBOX_* variables, expected to stop at once."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    return subprocess.run(
        [sys.executable, "-m", "sandbox_processor"],
        cwd=ROOT,
        env={**clean, "SANDBOX_DB_PATH": str(tmp_path / "never.sqlite3"), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


GOOD = {"SANDBOX_API_KEY": "sk_test_0123456789abcdef", "SANDBOX_WEBHOOK_SECRET": "whsec_0123456789abcdef"}


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({**GOOD, "SANDBOX_PORT": "not-a-port"}, "configuration error: SANDBOX_PORT: "),
        (
            {"SANDBOX_WEBHOOK_SECRET": GOOD["SANDBOX_WEBHOOK_SECRET"]},
            "configuration error: SANDBOX_API_KEY: not set",
        ),
        (
            {**GOOD, "SANDBOX_WEBHOOK_SECRET": "changeme"},
            "configuration error: SANDBOX_WEBHOOK_SECRET: is a placeholder",
        ),
    ],
    ids=["bad-port", "missing-key", "placeholder-secret"],
)
def test_a_bad_setting_stops_start_up_with_one_line(tmp_path: Path, env: dict[str, str], line: str) -> None:
    result = run_with(tmp_path, **env)
    assert result.returncode == 2
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr
    assert "changeme" not in result.stderr and "Traceback" not in result.stderr


def test_the_dev_runner_start_gives_a_working_sandbox_beside_the_dev_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env |= {"PAYMENTS_DATA_DIR": str(tmp_path / "pg"), "SANDBOX_PORT": str(free_port())}
    process = start_for_dev(env)
    try:
        assert env["SANDBOX_API_KEY"] == DEV_API_KEY  # filled in for the services started after it
        url = f"http://127.0.0.1:{env['SANDBOX_PORT']}/healthz"
        assert wait_until(lambda: _healthy(url), 20), "the dev sandbox never became healthy"
        assert (tmp_path / "pg-sandbox" / "sandbox.sqlite3").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0  # the runner counts any other status as a failure


def _healthy(url: str) -> bool:
    try:
        return get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
