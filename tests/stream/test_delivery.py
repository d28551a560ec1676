"""Delivery: nothing committed is skipped, nothing repeats on resume, each change shows its own moment."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import grpc
from sqlalchemy import Connection, Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller
from tests.stream.watching import Watcher, cancel, payment
from transaction_service import sql

PENDING, CANCELLED = pb.TRANSACTION_STATUS_PENDING, pb.TRANSACTION_STATUS_CANCELLED


def _insert_payment(conn: Connection, owner: str) -> tuple[str, int]:
    """A payment and its creation event written by the service's own statement; (id, xact id)."""
    row = conn.exec_driver_sql(
        sql.INSERT_PENDING_WITH_EVENT,
        {
            "owner": owner,
            "type": "PAYMENT",
            "amount_minor": 700,
            "currency": "EUR",
            "description": "out of order",
            "metadata": json.dumps({}),
            "idempotency_key": f"ooo-{uuid.uuid4()}",
            "request_fingerprint": hashlib.sha256(b"ooo").digest(),
            "refund_of": None,
            "processor": None,
            "payment_method": None,
            "actor": owner,
        },
    ).one()
    return str(row.id), int(conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())


def test_changes_committed_in_the_reverse_order_of_their_start_are_all_delivered(
    db_engine: Engine, stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    alice = new_user()
    watcher = Watcher(stream_stub, alice.md).live()
    with db_engine.connect() as a, db_engine.connect() as b:
        first, first_xact = _insert_payment(a, alice.id)  # A starts first: the smaller xact id
        second, second_xact = _insert_payment(b, alice.id)
        assert first_xact < second_xact
        b.commit()  # B commits first; a cursor on a plain increasing id would now pass A by
        time.sleep(0.6)  # three poll intervals and B's NOTIFY: time enough to (wrongly) serve B alone
        served_before_a = [c.transaction.id for c in watcher.changes]
        a.commit()
    changes = watcher.wait_for(2)
    watcher.stop()
    assert served_before_a == []  # B waits behind A, which might still have committed ahead of it
    assert [c.transaction.id for c in changes] == [first, second]  # in (xact id, position) order
    # a watcher that resumes after the first change gets the second: nothing fell behind its cursor
    resumed = Watcher(stream_stub, alice.md, resume_token=changes[0].resume_token).live()
    assert [c.transaction.id for c in resumed.wait_for(1)] == [second]
    resumed.stop()


def test_each_change_carries_the_transaction_as_it_was_right_after_it(
    stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    alice = new_user()
    start = Watcher(stream_stub, alice.md).live()
    start.stop()
    created = payment(stream_stub, alice)
    cancel(stream_stub, alice, created.id)
    # read afterwards, from the position before both: the creation still shows PENDING at etag 1
    creation, cancellation = Watcher(stream_stub, alice.md, resume_token=start.start_token).live().wait_for(2)
    assert (creation.new_status, creation.old_status) == (PENDING, pb.TRANSACTION_STATUS_UNSPECIFIED)
    assert (creation.transaction.status, creation.transaction.etag) == (PENDING, "1")
    assert (cancellation.old_status, cancellation.new_status) == (PENDING, CANCELLED)
    assert (cancellation.transaction.status, cancellation.transaction.etag) == (CANCELLED, "2")
    assert (cancellation.actor, cancellation.reason) == (alice.id, "test")
    assert creation.transaction.amount_minor == 1250 and creation.transaction.user_id == alice.id
    assert cancellation.occurred_at.ToDatetime() >= creation.occurred_at.ToDatetime()
    assert len({creation.event_id, cancellation.event_id}) == 2


def test_a_watch_without_token_starts_with_what_commits_after_it_started(
    stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    alice = new_user()
    before = payment(stream_stub, alice)
    watcher = Watcher(stream_stub, alice.md).live()
    after = payment(stream_stub, alice)
    (change,) = watcher.wait_for(1)
    time.sleep(0.3)
    watcher.stop()
    assert change.transaction.id == after.id
    assert before.id not in {c.transaction.id for c in watcher.changes}


WRITERS, CHANGES_PER_WRITER, RECONNECT_EVERY = 4, 500, 50


def _write(stub: Any, caller: Caller, payments: int, done: list[str], errors: list[BaseException]) -> None:
    """`payments` payments, each created and then cancelled: two changes each, in that order."""
    try:
        for _ in range(payments):
            created = payment(stub, caller)
            cancel(stub, caller, created.id)
            done.append(created.id)
    except BaseException as err:
        errors.append(err)


def test_a_watcher_that_reconnects_every_50_changes_misses_and_repeats_nothing(
    db_engine: Engine, stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    alice = new_user()
    token = Watcher(stream_stub, alice.md).live()
    token.stop()
    resume = token.start_token
    done: list[str] = []
    errors: list[BaseException] = []
    writers = [
        threading.Thread(target=_write, args=(stream_stub, alice, CHANGES_PER_WRITER // 2, done, errors))
        for _ in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    received: list[pb.TransactionChange] = []
    expected = WRITERS * CHANGES_PER_WRITER
    reconnects, deadline = 0, time.monotonic() + 60
    while len(received) < expected and time.monotonic() < deadline:
        call = stream_stub.WatchTransactions(
            pb.WatchTransactionsRequest(resume_token=resume), metadata=alice.md
        )
        reconnects += 1
        try:
            for change in call:
                received.append(change)
                resume = change.resume_token
                if len(received) % RECONNECT_EVERY == 0 or len(received) >= expected:
                    break
        except grpc.RpcError as err:
            raise AssertionError(f"the stream failed: {err}") from err
        finally:
            call.cancel()
    for writer in writers:
        writer.join(30)
    assert not errors, errors
    with db_engine.connect() as conn:
        stored = set(
            conn.execute(
                text(
                    "SELECT e.id::text FROM payments.transaction_events e"
                    " JOIN payments.transactions t ON t.id = e.transaction_id WHERE t.user_id = :u"
                ),
                {"u": alice.id},
            ).scalars()
        )
    ids = [c.event_id for c in received]
    assert len(stored) == expected
    assert stored - set(ids) == set()  # 0 lost
    assert len(ids) == len(set(ids))  # 0 repeated (so 0 duplicates once repeats are dropped)
    assert reconnects >= expected // RECONNECT_EVERY
    statuses: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for change in received:
        statuses[change.transaction.id].append((int(change.transaction.etag), change.new_status))
    assert len(statuses) == len(done) == expected // 2
    assert all(seen == [(1, PENDING), (2, CANCELLED)] for seen in statuses.values())  # each in order
