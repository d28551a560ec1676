"""Idempotency keys: a retry returns the original, a changed request is refused, racers get one row."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from tests.helpers import Caller, details_of
from tests.transaction.builders import payment_request


def rows_with_key(db_engine: Engine, user_id: str, key: str) -> int:
    with db_engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM payments.transactions WHERE user_id = :u AND idempotency_key = :k"
                ),
                {"u": user_id, "k": key},
            ).scalar_one()
        )


def test_a_replay_returns_the_same_transaction_and_adds_no_row(
    tx_stub: Any, alice: Caller, db_engine: Engine
) -> None:
    request = payment_request()
    first = tx_stub.CreateTransaction(request, metadata=alice.md).transaction
    second = tx_stub.CreateTransaction(request, metadata=alice.md).transaction
    assert second == first
    assert rows_with_key(db_engine, alice.id, request.idempotency_key) == 1
    with db_engine.connect() as conn:
        events = conn.execute(
            text("SELECT count(*) FROM payments.transaction_events WHERE transaction_id = :t"),
            {"t": first.id},
        ).scalar_one()
    assert events == 1


def test_the_same_key_with_a_different_request_is_already_exists(tx_stub: Any, alice: Caller) -> None:
    request = payment_request()
    tx_stub.CreateTransaction(request, metadata=alice.md)
    changed = payment_request(idempotency_key=request.idempotency_key, amount_minor=request.amount_minor + 1)
    with pytest.raises(grpc.RpcError) as caught:
        tx_stub.CreateTransaction(changed, metadata=alice.md)
    details = details_of(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


def test_keys_are_scoped_per_user(tx_stub: Any, alice: Caller, bob: Caller) -> None:
    request = payment_request()
    mine = tx_stub.CreateTransaction(request, metadata=alice.md).transaction
    theirs = tx_stub.CreateTransaction(request, metadata=bob.md).transaction
    assert mine.id != theirs.id and theirs.user_id == bob.id


def test_fifty_concurrent_creates_with_one_key_make_exactly_one_row(
    tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    carol = new_user()
    request = payment_request()

    def attempt(_: int) -> Any:
        try:
            return tx_stub.CreateTransaction(request, metadata=carol.md).transaction
        except grpc.RpcError as err:
            return err.code()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(attempt, range(50)))
    transactions = [r for r in results if not isinstance(r, grpc.StatusCode)]
    assert {r for r in results if isinstance(r, grpc.StatusCode)} <= {grpc.StatusCode.ABORTED}
    assert transactions and len({t.id for t in transactions}) == 1
    assert rows_with_key(db_engine, carol.id, request.idempotency_key) == 1


def test_a_service_principal_cannot_own_transactions(tx_stub: Any, settle_client: Caller) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        tx_stub.CreateTransaction(
            payment_request(idempotency_key=str(uuid.uuid4())), metadata=settle_client.md
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
