"""Money invariants under racing requests: one winner per transition, one row per key, no over-refund.

32 concurrent status updates of one transaction leave exactly one winner and its one event;
50 concurrent creates with one idempotency key and two bodies make one row (OK callers got that
row, the others ALREADY_EXISTS); 24 racing refunds of one payment, some released at once, never
refund more than it. Round counts: ADVERSARIAL_TRANSITION_ROUNDS, _KEY_ROUNDS, _REFUND_ROUNDS
(tests/adversarial/money.py).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.money import KEY_ROUNDS, OK, REFUND_ROUNDS, TRANSITION_ROUNDS, outcome
from tests.adversarial.tools import record
from tests.helpers import Caller
from tests.transaction.builders import CANCELLED, COMPLETED, FAILED, REFUND, payment_request

pytestmark = pytest.mark.slow


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
