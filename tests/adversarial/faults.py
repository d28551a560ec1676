"""Shared by the fault tests: a careful writer under load, and the check that nothing was lost.

`Writer` creates payments with fresh idempotency keys until stopped, remembers every request and
its answer, and afterwards retries each unanswered request with its own key; `rows_by_key` and
`check_nothing_lost_or_doubled` compare that with what the database holds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import Engine, text

from tests.helpers import Caller
from tests.transaction.builders import payment_request

OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE


@dataclass
class Writer:
    """Creates payments with fresh keys until stopped; remembers every request and its answer."""

    stub: Any
    caller: Caller
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[str, Any] = field(default_factory=dict)  # key -> request
    acked: dict[str, str] = field(default_factory=dict)  # key -> transaction id
    codes: Counter[str] = field(default_factory=Counter)

    def run(self, timeout: float = 5.0) -> None:
        while not self.stop.is_set():
            request = payment_request()
            with self.lock:
                self.requests[request.idempotency_key] = request
            try:
                reply = self.stub.CreateTransaction(request, metadata=self.caller.md, timeout=timeout)
            except grpc.RpcError as err:
                with self.lock:
                    self.codes[err.code().name] += 1
                time.sleep(0.02)
                continue
            with self.lock:
                self.codes["OK"] += 1
                self.acked[request.idempotency_key] = reply.transaction.id

    def unacknowledged(self) -> list[Any]:
        return [r for k, r in self.requests.items() if k not in self.acked]

    def retry_unacknowledged(self, stub: Any, seconds: float = 30.0) -> int:
        """Retry each unanswered request with its own key until the service answers; returns how many."""
        pending = self.unacknowledged()
        deadline = time.monotonic() + seconds
        for request in pending:
            while True:
                try:
                    reply = stub.CreateTransaction(request, metadata=self.caller.md, timeout=5)
                    self.acked[request.idempotency_key] = reply.transaction.id
                    break
                except grpc.RpcError as err:
                    assert err.code() in {UNAVAILABLE, grpc.StatusCode.ABORTED}, err
                    assert time.monotonic() < deadline, "the service did not come back"
                    time.sleep(0.1)
        return len(pending)


def rows_by_key(db_engine: Engine, user_id: str) -> dict[str, list[str]]:
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT idempotency_key, id FROM payments.transactions WHERE user_id = :u"), {"u": user_id}
        ).all()
    found: dict[str, list[str]] = {}
    for key, tx_id in rows:
        found.setdefault(key, []).append(str(tx_id))
    return found


def check_nothing_lost_or_doubled(writer: Writer, db_engine: Engine, acked_before: dict[str, str]) -> None:
    stored = rows_by_key(db_engine, writer.caller.id)
    duplicates = {k: ids for k, ids in stored.items() if len(ids) > 1}
    lost = {k: i for k, i in acked_before.items() if stored.get(k) != [i]}
    unanswered = [k for k in writer.requests if k not in writer.acked]
    mismatched = {k: i for k, i in writer.acked.items() if stored.get(k) != [i]}
    assert (duplicates, lost, unanswered, mismatched) == ({}, {}, [], {})
    assert set(stored) == set(writer.requests)  # no row the writers did not ask for
