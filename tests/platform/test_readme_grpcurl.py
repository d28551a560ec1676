"""The README's grpcurl examples, pasted into a shell against the running services, work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.servers import ROOT

BIN = Path(sys.executable).parent


def readme_blocks() -> list[str]:
    """The ```sh blocks of the README that call grpcurl, in order."""
    text = (ROOT / "README.md").read_text()
    return [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "grpcurl" in b]


def test_readme_has_grpcurl_examples_for_both_services():
    script = "\n".join(readme_blocks())
    for method in (
        "AuthService/Register",
        "AuthService/Login",
        "AuthService/GetCurrentUser",
        "TransactionService/CreateTransaction",
        "TransactionService/ListTransactions",
        "TransactionService/UpdateTransactionStatus",
        "TransactionService/ListTransactionEvents",
    ):
        assert method in script


@pytest.fixture
def run_readme(auth_address):
    def _run(script: str, tx_address: str = "", admin=None) -> subprocess.CompletedProcess[str]:
        script = script.replace("localhost:50051", auth_address)
        script = script.replace("localhost:50052", tx_address)
        script = script.replace("alice@example.com", f"alice-{uuid.uuid4().hex[:8]}@example.com")
        script = re.sub(r"order-100(\d)", lambda m: f"order-{m[1]}-{uuid.uuid4().hex[:8]}", script)
        if admin is not None:  # the dev admin exists only in `make run`'s database
            script = script.replace("admin@payments.local", admin.email).replace(
                "dev-admin-password", admin.password
            )
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return _run


def test_auth_examples_run_as_pasted(run_readme):
    auth_blocks = [b for b in readme_blocks() if "50052" not in b]
    result = run_readme("\n".join(auth_blocks))
    assert result.returncode == 0, result.stderr
    assert "payments.auth.v1.AuthService" in result.stdout
    assert '"email": "alice-' in result.stdout
    assert '"ROLE_USER"' in result.stdout


def test_transaction_examples_run_as_pasted_with_the_admin(run_readme, tx_address, admin_user, worker):
    (tx_block,) = [b for b in readme_blocks() if "50052" in b]
    result = run_readme(tx_block, tx_address=tx_address, admin=admin_user)
    assert result.returncode == 0, result.stderr
    assert '"TRANSACTION_STATUS_COMPLETED"' in result.stdout
    assert '"amount_minor": "1250"' in result.stdout
    assert '"new_status": "TRANSACTION_STATUS_COMPLETED"' in result.stdout
    assert '"reason": "settled"' in result.stdout
    assert '"failure_code": "card_declined"' in result.stdout  # charged through the sandbox


def test_python_example_runs_as_written(auth_address, tx_address, admin_user, capsys):
    """The README's Python block, with the test servers' addresses and an admin of their database.

    tests/platform/test_dev_runner.py runs it as pasted against `make run` and its dev admin.
    """
    text = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", text, re.S)
    example = example.replace("localhost:50051", auth_address).replace("localhost:50052", tx_address)
    example = example.replace("admin@payments.local", admin_user.email)
    example = example.replace("dev-admin-password", admin_user.password)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    created, listed = capsys.readouterr().out.splitlines()
    payment = namespace["payment"]
    assert created == f"{payment.id} PENDING"  # statuses print as names, not numbers
    assert listed == f"{payment.id} 1250 COMPLETED"
