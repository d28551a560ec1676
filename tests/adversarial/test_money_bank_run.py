"""Money invariants after a bank run: workers create, settle, cancel, refund and replay at once.

8 workers for ADVERSARIAL_BANK_SECONDS (30 s by default, tests/adversarial/money.py); afterwards
every acknowledged create is stored for its owner, every acknowledged final status is the stored
one, no call was UNKNOWN, INTERNAL, UNAVAILABLE or DEADLINE_EXCEEDED, and every money invariant
holds over the whole database.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.money import BANK_SECONDS, OK, outcome
from tests.adversarial.tools import BUG_CODES, assert_money_invariants, record
from tests.helpers import Caller
from tests.transaction.builders import CANCELLED, COMPLETED, FAILED, REFUND, payment_request

pytestmark = pytest.mark.slow


class Bank:
    """The state the workers acknowledged: what the database must agree with afterwards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, tuple[str, str]] = {}  # key -> (id, owner id)
        self.pending: list[tuple[str, Caller]] = []
        self.completed_payments: list[tuple[str, Caller, int]] = []
        self.final: dict[str, int] = {}  # id -> acknowledged final status
        self.codes: Counter[str] = Counter()
        self.bugs: list[Any] = []


def bank_worker(
    stub: Any, bank: Bank, users: list[Caller], settler: Caller, stop_at: float, seed: int
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        action = rng.random()
        if action < 0.35 or not bank.pending:
            user = rng.choice(users)
            currency, amount = rng.choice([("EUR", rng.randint(1, 50_000)), ("JPY", rng.randint(1, 9_000))])
            request = payment_request(currency=currency, amount_minor=amount)
            code, reply = outcome(stub.CreateTransaction, request, metadata=user.md, timeout=20)
            if code == OK and rng.random() < 0.2:  # a client retry of an acknowledged create
                again_code, again = outcome(stub.CreateTransaction, request, metadata=user.md, timeout=20)
                if again_code != OK or again.transaction.id != reply.transaction.id:
                    bank.bugs.append(("replay", again_code))
            if code == OK:
                with bank.lock:
                    bank.created[request.idempotency_key] = (reply.transaction.id, user.id)
                    bank.pending.append((reply.transaction.id, user))
        elif action < 0.70:
            with bank.lock:
                if not bank.pending:
                    continue
                index = rng.randrange(len(bank.pending))
                # now and then leave it listed, so that two workers may race to settle it
                tx_id, user = bank.pending[index] if rng.random() < 0.2 else bank.pending.pop(index)
            target = rng.choice([COMPLETED, COMPLETED, FAILED, CANCELLED])
            who = user if target == CANCELLED else settler
            request = pb.UpdateTransactionStatusRequest(id=tx_id, status=target, reason="bank run")
            code, reply = outcome(stub.UpdateTransactionStatus, request, metadata=who.md, timeout=20)
            if code == OK:
                with bank.lock:
                    bank.final[tx_id] = reply.transaction.status
                    if (
                        reply.transaction.status == COMPLETED
                        and reply.transaction.type == pb.TRANSACTION_TYPE_PAYMENT
                    ):
                        bank.completed_payments.append((tx_id, user, reply.transaction.amount_minor))
        else:
            with bank.lock:
                if not bank.completed_payments:
                    continue
                payment_id, user, amount = rng.choice(bank.completed_payments)
            share = rng.randint(1, max(1, amount // 2))
            request = payment_request(type=REFUND, refund_of=payment_id, amount_minor=share)
            got = stub.GetTransaction(pb.GetTransactionRequest(id=payment_id), metadata=user.md, timeout=20)
            request.currency = got.transaction.currency
            code, reply = outcome(stub.CreateTransaction, request, metadata=user.md, timeout=20)
            if code == OK:
                with bank.lock:
                    bank.created[request.idempotency_key] = (reply.transaction.id, user.id)
                    bank.pending.append((reply.transaction.id, user))
            elif (code, getattr(reply, "reason", "")) != (
                grpc.StatusCode.FAILED_PRECONDITION,
                "REFUND_EXCEEDS_REMAINING",
            ):
                bank.bugs.append(("refund", code, reply))
        with bank.lock:
            bank.codes[code.name] += 1
            if code in BUG_CODES or code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}:
                bank.bugs.append((code, reply))


def test_a_bank_run_of_creates_settlements_and_refunds_keeps_every_money_invariant(
    tx_stub: Any, new_user: Callable[..., Caller], settle_client: Caller, db_engine: Engine
) -> None:
    users = [new_user() for _ in range(4)]
    bank = Bank()
    workers = 8
    stop_at = time.monotonic() + BANK_SECONDS
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(bank_worker, tx_stub, bank, users, settle_client, stop_at, seed)
            for seed in range(workers)
        ]
        for future in futures:
            future.result()
    ids = [tx_id for tx_id, _ in bank.created.values()]
    with db_engine.connect() as conn:
        stored = {
            r.idempotency_key: (str(r.id), str(r.user_id), r.status)
            for r in conn.execute(
                text(
                    "SELECT id, user_id, idempotency_key, status FROM payments.transactions"
                    " WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": ids},
            )
        }
    statuses = {1: "PENDING", 2: "COMPLETED", 3: "FAILED", 4: "CANCELLED"}
    missing = [
        key for key, (tx_id, owner) in bank.created.items() if stored.get(key, ("", ""))[:2] != (tx_id, owner)
    ]
    by_id = {tx_id: status for tx_id, _, status in stored.values()}
    drifted = [tx_id for tx_id, status in bank.final.items() if by_id.get(tx_id) != statuses[status]]
    checked = assert_money_invariants(db_engine)
    requests = sum(bank.codes.values())
    record(
        "bank run: workers create, settle and refund; invariants hold afterwards",
        trials=1,
        seconds=BANK_SECONDS,
        workers=workers,
        requests=requests,
        acknowledged_creates=len(bank.created),
        acknowledged_settlements=len(bank.final),
        transactions_checked=checked,
        codes=dict(bank.codes),
        failures=len(bank.bugs) + len(missing) + len(drifted),
    )
    assert bank.bugs == []
    assert missing == []
    assert drifted == []
    assert len(bank.created) > 50 and len(bank.final) > 20  # the run really did something
