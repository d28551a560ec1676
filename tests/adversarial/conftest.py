"""Shared tools of the adversarial campaign: figures, database invariants, every RPC, a service process.

Each property records its figures (trials, requests, failures) as one JSON
line in `.pytest_cache/adversarial/figures.jsonl` (or $ADVERSARIAL_FIGURES),
so that tests/README.md quotes what the last run really measured.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Connection, Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.conftest import FAST_HASH_ENV, ROOT, TX_ROLE
from tests.helpers import Caller
from tests.transaction import conftest as transaction_fixtures
from tests.transaction.conftest import payment_request

FIGURES = Path(
    os.environ.get("ADVERSARIAL_FIGURES", ROOT / ".pytest_cache" / "adversarial" / "figures.jsonl")
)
SERVICE = "payments.transaction.v1.TransactionService"
# codes that only a server bug may produce (SPEC §4)
BUG_CODES = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


RUN = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"  # tells this pytest run's lines from others'


def record(prop: str, **figures: Any) -> None:
    """Append one property's figures from this run (also printed, visible with -s)."""
    line = json.dumps({"property": prop, **figures, "run": RUN})
    print(line)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as out:
        out.write(line + "\n")


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    """The status code of one call (OK when it returns)."""
    try:
        call()
    except grpc.RpcError as err:
        return err.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def every_rpc(tx_id: str, payment_id: str) -> dict[str, Callable[..., Any]]:
    """One plausible request for each TransactionService RPC, as `call(stub, metadata)`.

    Each would succeed (or at least reach the data) with the owner's token, so a
    refusal is the token's doing, not the request's.
    """
    key = f"adv-{uuid.uuid4()}"
    return {
        "CreateTransaction": lambda s, md, timeout=10.0: s.CreateTransaction(
            payment_request(idempotency_key=key), metadata=md, timeout=timeout
        ),
        "CreateTransaction(refund)": lambda s, md, timeout=10.0: s.CreateTransaction(
            payment_request(type=pb.TRANSACTION_TYPE_REFUND, refund_of=payment_id, amount_minor=1),
            metadata=md,
            timeout=timeout,
        ),
        "GetTransaction": lambda s, md, timeout=10.0: s.GetTransaction(
            pb.GetTransactionRequest(id=tx_id), metadata=md, timeout=timeout
        ),
        "ListTransactions": lambda s, md, timeout=10.0: s.ListTransactions(
            pb.ListTransactionsRequest(), metadata=md, timeout=timeout
        ),
        "UpdateTransactionStatus": lambda s, md, timeout=10.0: s.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=tx_id, status=pb.TRANSACTION_STATUS_CANCELLED, reason="x"),
            metadata=md,
            timeout=timeout,
        ),
        "ListTransactionEvents": lambda s, md, timeout=10.0: s.ListTransactionEvents(
            pb.ListTransactionEventsRequest(transaction_id=tx_id), metadata=md, timeout=timeout
        ),
    }


def snapshot(db_engine: Engine, user_id: str) -> tuple[Any, ...]:
    """Everything stored for one user: rows (with version) and events, to prove 'no side effect'."""
    with db_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, status, version, refunded_minor, updated_at FROM payments.transactions"
                " WHERE user_id = :u ORDER BY id"
            ),
            {"u": user_id},
        ).all()
        events = conn.execute(
            text(
                "SELECT e.id FROM payments.transaction_events e JOIN payments.transactions t"
                " ON t.id = e.transaction_id WHERE t.user_id = :u ORDER BY e.id"
            ),
            {"u": user_id},
        ).all()
    return tuple(rows), tuple(events)


# Each query returns the offending rows; the invariants hold when all are empty.
INVARIANTS = {
    "refunded_minor equals the sum of live refunds": """
        SELECT p.id FROM payments.transactions p
        LEFT JOIN payments.transactions r ON r.refund_of = p.id AND r.status NOT IN ('FAILED', 'CANCELLED')
        WHERE p.type = 'PAYMENT' GROUP BY p.id, p.refunded_minor
        HAVING p.refunded_minor <> coalesce(sum(r.amount_minor), 0)""",
    "refunded sum never exceeds the payment": """
        SELECT p.id FROM payments.transactions p JOIN payments.transactions r ON r.refund_of = p.id
        WHERE r.status NOT IN ('FAILED', 'CANCELLED') GROUP BY p.id, p.amount_minor
        HAVING sum(r.amount_minor) > p.amount_minor""",
    "a refund returns money only from a COMPLETED payment": """
        SELECT r.id FROM payments.transactions r JOIN payments.transactions p ON p.id = r.refund_of
        WHERE p.type <> 'PAYMENT' OR p.status <> 'COMPLETED'""",
    "every row has its creation event": """
        SELECT t.id FROM payments.transactions t WHERE NOT EXISTS (
            SELECT 1 FROM payments.transaction_events e
            WHERE e.transaction_id = t.id AND e.old_status IS NULL AND e.new_status = 'PENDING')""",
    "every row has exactly the events its status implies": """
        SELECT t.id FROM payments.transactions t JOIN payments.transaction_events e ON e.transaction_id = t.id
        GROUP BY t.id, t.status
        HAVING count(*) <> CASE WHEN t.status = 'PENDING' THEN 1 ELSE 2 END
            OR count(*) FILTER (WHERE e.old_status IS NULL) <> 1
            OR (t.status <> 'PENDING' AND count(*) FILTER (
                    WHERE e.old_status = 'PENDING' AND e.new_status = t.status) <> 1)""",
    "no event without its row": """
        SELECT e.id FROM payments.transaction_events e
        WHERE NOT EXISTS (SELECT 1 FROM payments.transactions t WHERE t.id = e.transaction_id)""",
}


def assert_money_invariants(db_engine: Engine) -> int:
    """Check every invariant over the whole database; returns how many transactions were checked."""
    with db_engine.connect() as conn:
        broken = {name: conn.execute(text(sql)).scalars().all()[:5] for name, sql in INVARIANTS.items()}
        checked = int(conn.execute(text("SELECT count(*) FROM payments.transactions")).scalar_one())
    assert {name: ids for name, ids in broken.items() if ids} == {}
    return checked


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        with grpc.insecure_channel(self.address) as channel:
            grpc.channel_ready_future(channel).result(timeout=timeout)

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


@pytest.fixture
def service_process(database_url: str, auth_address: str) -> Iterator[Callable[..., ServiceProcess]]:
    """Factory of transaction service processes (killed at the end of the test)."""
    made: list[ServiceProcess] = []

    def _make(**env: str) -> ServiceProcess:
        made.append(ServiceProcess(database_url, auth_address, free_port(), dict(env)))
        return made[-1]

    yield _make
    for process in made:
        process.stop()


# the transaction tests' fixtures, shared here
create = transaction_fixtures.create
settle = transaction_fixtures.settle


def cancels_stuck_behind_row_locks(
    blocker: Connection, pool: Executor, stub: Any, owner: Caller, held: list[Any], timeout: float
) -> list[Future[grpc.StatusCode]]:
    """Lock `held` rows in `blocker`'s open transaction, then start one CANCELLED update per row.

    Each update occupies a server thread and a pooled connection until `blocker` rolls back.
    """
    blocker.execute(
        text("SELECT 1 FROM payments.transactions WHERE id = ANY(CAST(:ids AS uuid[])) FOR UPDATE"),
        {"ids": [t.id for t in held]},
    )
    request = pb.UpdateTransactionStatusRequest
    return [
        pool.submit(
            code_of,
            lambda t=t: stub.UpdateTransactionStatus(
                request(id=t.id, status=pb.TRANSACTION_STATUS_CANCELLED), metadata=owner.md, timeout=timeout
            ),
        )
        for t in held
    ]


def stub_for(channel: grpc.Channel) -> Any:
    return transaction_pb2_grpc.TransactionServiceStub(channel)


@pytest.fixture
def owner_with_data(
    new_user: Callable[..., Caller], create: Callable[..., Any], settle: Callable[..., Any]
) -> tuple[Caller, Any, Any]:
    """A user with a PENDING transaction and a COMPLETED payment: something to steal or break."""
    owner = new_user()
    pending = create(owner, amount_minor=500)
    payment = settle(create(owner, amount_minor=900).id)
    return owner, pending, payment
