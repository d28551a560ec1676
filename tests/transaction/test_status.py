"""The status machine through the API: atomic transitions, no-ops, etags and who may settle."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, details_of
from tests.transaction.builders import CANCELLED, COMPLETED, FAILED, PENDING


def update(tx_stub: Any, caller: Caller, tx_id: str, status: int, etag: str = "") -> Any:
    request = pb.UpdateTransactionStatusRequest(id=tx_id, status=status, etag=etag)
    return tx_stub.UpdateTransactionStatus(request, metadata=caller.md).transaction


def failure(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = details_of(caught.value)
    return details.code, details.reason


def status_events(db_engine: Engine, tx_id: str) -> list[tuple[str | None, str]]:
    with db_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT old_status, new_status FROM payments.transaction_events"
                " WHERE transaction_id = :t ORDER BY created_at"
            ),
            {"t": tx_id},
        )
        return [(r.old_status, r.new_status) for r in rows]


def race(n: int, call: Callable[[int], Any]) -> list[Any]:
    def attempt(i: int) -> Any:
        try:
            return call(i)
        except grpc.RpcError as err:
            return err.code()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(attempt, range(n)))


def test_thirty_two_concurrent_settlements_change_it_once_and_write_one_event(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, settle_client: Caller, db_engine: Engine
) -> None:
    tx = create(alice)
    results = race(32, lambda _: update(tx_stub, settle_client, tx.id, COMPLETED))
    assert all(not isinstance(r, grpc.StatusCode) and r.status == COMPLETED for r in results)
    assert len({r.etag for r in results}) == 1
    assert status_events(db_engine, tx.id) == [(None, "PENDING"), ("PENDING", "COMPLETED")]


def test_concurrent_updates_to_different_targets_leave_one_winner(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, settle_client: Caller, db_engine: Engine
) -> None:
    tx = create(alice)
    targets = [COMPLETED, FAILED, CANCELLED, COMPLETED]
    results = race(32, lambda i: update(tx_stub, settle_client, tx.id, targets[i % 4]))
    final = tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx.id), metadata=alice.md).transaction
    for i, result in enumerate(results):
        if targets[i % 4] == final.status:
            assert not isinstance(result, grpc.StatusCode) and result.status == final.status
        else:
            assert result == grpc.StatusCode.FAILED_PRECONDITION
    assert len(status_events(db_engine, tx.id)) == 2


def test_repeating_the_current_status_is_a_no_op(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, db_engine: Engine
) -> None:
    tx = create(alice)
    assert update(tx_stub, alice, tx.id, PENDING) == tx
    cancelled = update(tx_stub, alice, tx.id, CANCELLED)
    assert update(tx_stub, alice, tx.id, CANCELLED, etag=tx.etag) == cancelled
    assert len(status_events(db_engine, tx.id)) == 2


@pytest.mark.parametrize(
    ("first", "then"), [(COMPLETED, CANCELLED), (FAILED, COMPLETED), (CANCELLED, PENDING)]
)
def test_final_statuses_cannot_change(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, settle_client: Caller, first: int, then: int
) -> None:
    tx = update(tx_stub, settle_client, create(alice).id, first)
    code_reason = failure(lambda: update(tx_stub, settle_client, tx.id, then))
    assert code_reason == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATUS_TRANSITION")


def test_a_stale_etag_is_aborted(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, settle_client: Caller
) -> None:
    read = create(alice)
    for stale in ("999", "9999999999"):  # the largest accepted etag is beyond a 32-bit version
        assert failure(lambda e=stale: update(tx_stub, settle_client, read.id, COMPLETED, etag=e)) == (
            grpc.StatusCode.ABORTED,
            "ETAG_MISMATCH",
        )
    update(tx_stub, settle_client, read.id, FAILED)
    assert failure(lambda: update(tx_stub, settle_client, read.id, COMPLETED, etag=read.etag)) == (
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )


def test_the_current_etag_lets_the_update_through(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, settle_client: Caller
) -> None:
    read = create(alice)
    assert update(tx_stub, settle_client, read.id, COMPLETED, etag=read.etag).status == COMPLETED


def test_an_owner_may_cancel_but_not_complete_their_payment(
    tx_stub: Any, create: Callable[..., Any], alice: Caller
) -> None:
    tx = create(alice)
    assert failure(lambda: update(tx_stub, alice, tx.id, COMPLETED)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SETTLE_SCOPE_REQUIRED",
    )
    assert update(tx_stub, alice, tx.id, CANCELLED).status == CANCELLED


def test_a_service_principal_without_the_settle_scope_cannot_complete_a_payment(
    tx_stub: Any,
    create: Callable[..., Any],
    alice: Caller,
    make_service_principal: Callable[[list[str]], Caller],
) -> None:
    reporting = make_service_principal(["transactions:read"])
    tx = create(alice)
    code, _ = failure(lambda: update(tx_stub, reporting, tx.id, COMPLETED))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx.id), metadata=alice.md).transaction == tx


def test_an_admin_may_settle_any_users_payment(
    tx_stub: Any, create: Callable[..., Any], alice: Caller, admin_user: Caller
) -> None:
    tx = create(alice)
    settled = update(tx_stub, admin_user, tx.id, FAILED)
    assert settled.status == FAILED
    events = tx_stub.ListTransactionEvents(
        pb.ListTransactionEventsRequest(transaction_id=tx.id), metadata=alice.md
    )
    assert events.events[-1].actor == admin_user.id
