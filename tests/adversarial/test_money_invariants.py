"""Money invariants under concurrency: one winner per transition, one row per key, no over-refund.

Round counts and the bank run's length come from the environment so that a
longer soak is one variable away; the defaults keep the CI run short:
  ADVERSARIAL_TRANSITION_ROUNDS (200), ADVERSARIAL_KEY_ROUNDS (20),
  ADVERSARIAL_REFUND_ROUNDS (30), ADVERSARIAL_BANK_SECONDS (30).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.tools import BUG_CODES, assert_money_invariants, record
from tests.helpers import Caller, details_of
from tests.transaction.builders import CANCELLED, COMPLETED, FAILED, REFUND, payment_request

pytestmark = pytest.mark.slow

TRANSITION_ROUNDS = int(os.environ.get("ADVERSARIAL_TRANSITION_ROUNDS", "200"))
KEY_ROUNDS = int(os.environ.get("ADVERSARIAL_KEY_ROUNDS", "20"))
REFUND_ROUNDS = int(os.environ.get("ADVERSARIAL_REFUND_ROUNDS", "30"))
BANK_SECONDS = float(os.environ.get("ADVERSARIAL_BANK_SECONDS", "30"))
OK = grpc.StatusCode.OK


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, Any]:
    """(code, response or error details) of `call(*args, **kwargs)`."""
    try:
        return OK, call(*args, **kwargs)
    except grpc.RpcError as err:
        return err.code(), details_of(err)


def events_of(db_engine: Engine, tx_id: str) -> list[tuple[str | None, str]]:
    with db_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT old_status, new_status FROM payments.transaction_events"
                " WHERE transaction_id = :t ORDER BY created_at, id"
            ),
            {"t": tx_id},
        ).all()
    return [(r.old_status, r.new_status) for r in rows]


def test_thirty_two_concurrent_transitions_leave_exactly_one_winner_in_every_one_of_200_rounds(
    tx_stub: Any, new_user: Callable[..., Caller], settle_client: Caller, db_engine: Engine
) -> None:
    owner = new_user()
    racers = 32
    rng = random.Random(6)
    bad: list[Any] = []
    codes: Counter[str] = Counter()
    names = {COMPLETED: "COMPLETED", FAILED: "FAILED", CANCELLED: "CANCELLED"}
    with ThreadPoolExecutor(max_workers=racers) as pool:
        for round_no in range(TRANSITION_ROUNDS):
            tx = tx_stub.CreateTransaction(payment_request(), metadata=owner.md).transaction
            plan = [(rng.choice([COMPLETED, FAILED, CANCELLED]), rng.random() < 0.4) for _ in range(racers)]
            gate = threading.Barrier(racers)

            def race(target: int, with_etag: bool, tx: Any = tx, gate: threading.Barrier = gate) -> Any:
                who = owner if target == CANCELLED else settle_client
                request = pb.UpdateTransactionStatusRequest(
                    id=tx.id, status=target, etag=tx.etag if with_etag else "", reason="race"
                )
                gate.wait()
                return outcome(tx_stub.UpdateTransactionStatus, request, metadata=who.md, timeout=20)

            results = list(pool.map(lambda p: race(*p), plan))
            final = tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx.id), metadata=owner.md).transaction
            history = events_of(db_engine, tx.id)
            for (target, _), (code, reply) in zip(plan, results, strict=True):
                codes[code.name] += 1
                allowed = (
                    {OK}
                    if target == final.status
                    else {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}
                )
                if code not in allowed or (code == OK and reply.transaction.status != final.status):
                    bad.append((round_no, names[target], code, reply))
            if history != [(None, "PENDING"), ("PENDING", names.get(final.status))]:
                bad.append((round_no, "events", history))
    record(
        "concurrency: 32 racing transitions on one transaction -> one winner, one event",
        trials=TRANSITION_ROUNDS,
        requests=TRANSITION_ROUNDS * racers,
        codes=dict(codes),
        failures=len(bad),
    )
    assert bad == []


def test_fifty_concurrent_creates_with_one_key_and_two_different_bodies_make_one_row_every_round(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    db_engine: Engine,
) -> None:
    owner = new_user()
    payment = settle(create(owner, amount_minor=10**6).id)
    bad: list[Any] = []
    codes: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=50) as pool:
        for round_no in range(KEY_ROUNDS):
            key = f"race-{uuid.uuid4()}"
            refund = round_no % 2 == 1  # odd rounds race refunds, which lock the payment first
            bodies = [
                payment_request(
                    idempotency_key=key,
                    amount_minor=amount,
                    **({"type": REFUND, "refund_of": payment.id} if refund else {}),
                )
                for amount in (100, 200)
            ]
            gate = threading.Barrier(50)

            def attempt(i: int, bodies: list[Any] = bodies, gate: threading.Barrier = gate) -> Any:
                gate.wait()
                return outcome(tx_stub.CreateTransaction, bodies[i % 2], metadata=owner.md, timeout=20)

            results = list(pool.map(attempt, range(50)))
            with db_engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT id, amount_minor FROM payments.transactions"
                        " WHERE user_id = :u AND idempotency_key = :k"
                    ),
                    {"u": owner.id, "k": key},
                ).all()
            if len(rows) != 1:
                bad.append((round_no, "rows", len(rows)))
                continue
            row = rows[0]
            for i, (code, reply) in enumerate(results):
                codes[code.name] += 1
                same_body = bodies[i % 2].amount_minor == row.amount_minor
                if code == OK:
                    if str(reply.transaction.id) != str(row.id) or not same_body:
                        bad.append((round_no, i, "returned another row"))
                elif code == grpc.StatusCode.ALREADY_EXISTS:
                    if same_body or reply.reason != "IDEMPOTENCY_KEY_REUSED":
                        bad.append((round_no, i, code, reply.reason))
                elif code != grpc.StatusCode.ABORTED:
                    bad.append((round_no, i, code, reply))
    got = tx_stub.GetTransaction(pb.GetTransactionRequest(id=payment.id), metadata=owner.md).transaction
    with db_engine.connect() as conn:
        live = conn.execute(
            text("SELECT coalesce(sum(amount_minor), 0) FROM payments.transactions WHERE refund_of = :p"),
            {"p": payment.id},
        ).scalar_one()
    record(
        "concurrency: 50 same-key creates (two bodies) -> one row",
        trials=KEY_ROUNDS,
        requests=KEY_ROUNDS * 50,
        codes=dict(codes),
        failures=len(bad),
    )
    assert bad == []
    assert got.refunded_minor == live


def test_concurrent_refunds_and_releases_never_exceed_any_payment(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    settle_client: Caller,
    db_engine: Engine,
) -> None:
    owner = new_user()
    rng = random.Random(7)
    bad: list[Any] = []
    codes: Counter[str] = Counter()
    requests = 0
    with ThreadPoolExecutor(max_workers=24) as pool:
        for round_no in range(REFUND_ROUNDS):
            amount = rng.randint(100, 1000)
            payment = settle(create(owner, amount_minor=amount).id)
            gate = threading.Barrier(24)

            def refund(share: int, payment: Any = payment, gate: threading.Barrier = gate) -> Any:
                request = payment_request(type=REFUND, refund_of=payment.id, amount_minor=share)
                gate.wait()
                code, reply = outcome(tx_stub.CreateTransaction, request, metadata=owner.md, timeout=20)
                if code == OK and share % 3 == 0:  # give some back at once, racing the other refunds
                    release = pb.UpdateTransactionStatusRequest(id=reply.transaction.id, status=FAILED)
                    outcome(tx_stub.UpdateTransactionStatus, release, metadata=settle_client.md, timeout=20)
                return code, reply

            shares = [rng.randint(1, amount // 3) for _ in range(24)]
            results = list(pool.map(refund, shares))
            requests += 24
            for code, reply in results:
                codes[code.name] += 1
                if code != OK and (code, getattr(reply, "reason", "")) != (
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "REFUND_EXCEEDS_REMAINING",
                ):
                    bad.append((round_no, code, reply))
            with db_engine.connect() as conn:
                live, refunded = conn.execute(
                    text(
                        "SELECT coalesce(sum(r.amount_minor)"
                        " FILTER (WHERE r.status NOT IN ('FAILED', 'CANCELLED')), 0),"
                        " p.refunded_minor FROM payments.transactions p"
                        " LEFT JOIN payments.transactions r ON r.refund_of = p.id"
                        " WHERE p.id = :p GROUP BY p.refunded_minor"
                    ),
                    {"p": payment.id},
                ).one()
            if not live == refunded <= amount:
                bad.append((round_no, "sums", live, refunded, amount))
            if not any(code == OK for code, _ in results):
                bad.append((round_no, "no refund got through"))
    record(
        "concurrency: 24 racing refunds (some released at once) per payment -> never over",
        trials=REFUND_ROUNDS,
        requests=requests,
        codes=dict(codes),
        failures=len(bad),
    )
    assert bad == []


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
