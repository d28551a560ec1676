"""Shared tools of the adversarial campaign: figures, every RPC, snapshots, database invariants.

Each property records its figures (trials, requests, failures) as one JSON
line in `.pytest_cache/adversarial/figures.jsonl` (or $ADVERSARIAL_FIGURES),
so that tests/README.md quotes what the last run really measured.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import Connection, Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.helpers import Caller
from tests.servers import ROOT, TX_SERVICE
from tests.transaction.builders import payment_request

FIGURES = Path(
    os.environ.get("ADVERSARIAL_FIGURES", ROOT / ".pytest_cache" / "adversarial" / "figures.jsonl")
)
SERVICE = TX_SERVICE
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
