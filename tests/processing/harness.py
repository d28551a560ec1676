"""What the flow tests drive: the processing worker as a real process, and the flow's view of PostgreSQL.

The worker runs as `python -m transaction_service.processing`, exactly as an operator starts it,
against the shared test database and a sandbox of its own whose webhooks it receives.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text

from tests.helpers import free_port, wait_until
from tests.processor.harness import HttpProcess, Sandbox
from tests.servers import TX_ROLE
from transaction_service.connectors import reference_for

# the reconciler's pace, shortened for the CI budget (the defaults are in the README's table)
FAST_WORKER_ENV = {
    "RECONCILE_AFTER_SECONDS": "1",
    "RECONCILE_GIVE_UP_SECONDS": "30",
    "PROCESSOR_TIMEOUT_SECONDS": "3",
    "SUBMIT_LEASE_SECONDS": "5",
    "SUBMIT_POLL_SECONDS": "0.2",
}


@dataclass
class WorkerProcess(HttpProcess):
    """`python -m transaction_service.processing`; `kill()` is kill -9, `start()` again restarts it."""

    database_url: str
    sandbox: Sandbox
    log_path: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/sandbox"

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until /readyz says it reaches the database."""
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DATABASE_ROLE": TX_ROLE,
            "PROCESSOR_URL": self.sandbox.url,
            "PROCESSOR_API_KEY": self.sandbox.api_key,
            "PROCESSOR_WEBHOOK_SECRET": self.sandbox.webhook_secret,
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(self.port),
            "PROCESSING_METRICS_PORT": "0",
            "LOG_LEVEL": "INFO",
            **FAST_WORKER_ENV,
            **self.env,
        }
        self.launch("transaction_service.processing", env, f"http://127.0.0.1:{self.port}/readyz", timeout)


def new_worker(database_url: str, tmp: Path, sandbox_env: dict[str, str], **env: str) -> WorkerProcess:
    """A worker and its own sandbox (posting webhooks to the worker), not started."""
    port = free_port()
    sandbox = Sandbox(tmp / "sandbox.sqlite3", f"http://127.0.0.1:{port}/webhooks/sandbox", sandbox_env)
    return WorkerProcess(database_url, sandbox, tmp / "worker.log", port, dict(env))


def charges(sandbox: Sandbox, reference: str, kind: str = "charge") -> int:
    """How many objects the sandbox holds for our reference (read from its own storage)."""
    with sqlite3.connect(sandbox.db_path) as db:
        return int(
            db.execute(
                "SELECT count(*) FROM objects WHERE kind = ? AND reference = ?", (kind, reference)
            ).fetchone()[0]
        )


def state(engine: Engine, tx_id: str) -> dict[str, Any]:
    """The transaction's status, failure code, job and processor events, as PostgreSQL holds them."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, failure_code, processor_id, refunded_minor FROM payments.transactions"
                " WHERE id = :id"
            ),
            {"id": tx_id},
        ).one()
        jobs = conn.execute(
            text("SELECT count(*) FROM payments.processor_jobs WHERE transaction_id = :id"), {"id": tx_id}
        ).scalar_one()
        events = conn.execute(
            text(
                "SELECT source, outcome, processor_event_id FROM payments.processor_events"
                " WHERE transaction_id = :id ORDER BY received_at"
            ),
            {"id": tx_id},
        ).all()
        statuses = conn.execute(
            text(
                "SELECT old_status, new_status FROM payments.transaction_events"
                " WHERE transaction_id = :id ORDER BY xact_id, position"
            ),
            {"id": tx_id},
        ).all()
    return {
        "status": row.status,
        "failure_code": row.failure_code,
        "processor_id": row.processor_id,
        "refunded_minor": row.refunded_minor,
        "jobs": jobs,
        "events": [tuple(e) for e in events],
        "statuses": [tuple(s) for s in statuses],
    }


def wait_final(engine: Engine, tx_id: str, seconds: float = 20.0) -> dict[str, Any]:
    """The state once the transaction is final (asserts it gets there)."""
    final = {"COMPLETED", "FAILED", "CANCELLED"}
    assert wait_until(lambda: state(engine, tx_id)["status"] in final, seconds, step=0.1), state(
        engine, tx_id
    )
    return state(engine, tx_id)


def create_payment(tx_stub: Any, user: Any, method: str, amount: int = 1250, key: str = "") -> Any:
    """A payment charged through the processor, created over gRPC; the reply's transaction."""
    from payments.transaction.v1 import transaction_pb2 as pb

    request = pb.CreateTransactionRequest(
        type=pb.TRANSACTION_TYPE_PAYMENT,
        amount_minor=amount,
        currency="EUR",
        idempotency_key=key or f"flow-{time.monotonic_ns()}-{os.getpid()}",
        payment_method=method,
    )
    return tx_stub.CreateTransaction(request, metadata=user.md).transaction


def settled(tx_stub: Any, user: Any, tx_id: str, seconds: float = 20.0) -> Any:
    """The transaction over gRPC once it is final (asserts it gets there in time)."""
    from payments.transaction.v1 import transaction_pb2 as pb

    final = {pb.TRANSACTION_STATUS_COMPLETED, pb.TRANSACTION_STATUS_FAILED, pb.TRANSACTION_STATUS_CANCELLED}
    found: list[Any] = []

    def done() -> bool:
        found[:] = [tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx_id), metadata=user.md).transaction]
        return found[0].status in final

    assert wait_until(done, seconds, step=0.1), f"{tx_id} still {pb.TransactionStatus.Name(found[0].status)}"
    return found[0]


def reference(tx_id: str) -> str:
    """Our reference of a transaction at the processor (the connectors' own `reference_for`)."""
    return reference_for(UUID(tx_id))


def sandbox_deliveries(sandbox: Sandbox, reference_: str) -> list[tuple[str, str, str]]:
    """(event id, state, body) of each webhook the sandbox queued for an object of ours."""
    with sqlite3.connect(sandbox.db_path) as db:
        rows = db.execute("SELECT event_id, state, body FROM deliveries ORDER BY seq").fetchall()
    return [(str(e), str(s), str(b)) for e, s, b in rows if reference_ in b]


EXPECTED_OUTCOMES = {
    "pm_card_visa": ("TRANSACTION_STATUS_COMPLETED", ""),
    "pm_card_declined": ("TRANSACTION_STATUS_FAILED", "card_declined"),
    "pm_card_async": ("TRANSACTION_STATUS_COMPLETED", ""),  # by webhook
}


def outcomes(address: str, access_token: str) -> dict[str, tuple[str, str]]:
    """(status, failure code) of a payment with each of three methods, charged by whatever
    processor the transaction service at `address` and its worker use.
    """
    import grpc

    from payments.transaction.v1 import transaction_pb2 as pb
    from payments.transaction.v1 import transaction_pb2_grpc
    from tests.helpers import Caller

    caller = Caller("", access_token=access_token)
    with grpc.insecure_channel(address) as channel:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        ids = {method: create_payment(stub, caller, method, amount=990).id for method in EXPECTED_OUTCOMES}
        final = {method: settled(stub, caller, tx_id) for method, tx_id in ids.items()}
    return {m: (pb.TransactionStatus.Name(tx.status), tx.failure_code) for m, tx in final.items()}
