"""Another user's transaction is NOT_FOUND, byte-identical to a missing one, and stays untouched."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller
from tests.transaction.builders import CANCELLED, REFUND, payment_request


def error_of(call: Callable[[], Any]) -> tuple[Any, ...]:
    """Everything a caller can observe of a failure, except the per-call request id."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    err: Any = caught.value
    trailers = tuple((k, v) for k, v in err.trailing_metadata() if k != "x-request-id")
    return err.code(), err.details(), trailers


@pytest.fixture
def alices_payment(create: Callable[..., Any], settle: Callable[..., Any], alice: Caller) -> Any:
    return settle(create(alice, amount_minor=777).id)


def test_reading_another_users_transaction_looks_exactly_like_a_missing_one(
    tx_stub: Any, bob: Caller, alices_payment: Any
) -> None:
    def get(tx_id: str) -> Any:
        return lambda: tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx_id), metadata=bob.md)

    theirs, missing = error_of(get(alices_payment.id)), error_of(get(str(uuid.uuid4())))
    assert theirs == missing and theirs[0] == grpc.StatusCode.NOT_FOUND

    def events(tx_id: str) -> Any:
        request = pb.ListTransactionEventsRequest(transaction_id=tx_id)
        return lambda: tx_stub.ListTransactionEvents(request, metadata=bob.md)

    assert error_of(events(alices_payment.id)) == error_of(events(str(uuid.uuid4()))) == missing


def test_updating_or_refunding_another_users_transaction_is_not_found_and_changes_nothing(
    tx_stub: Any, alice: Caller, bob: Caller, create: Callable[..., Any], alices_payment: Any
) -> None:
    pending = create(alice)

    def cancel(tx_id: str) -> Any:
        request = pb.UpdateTransactionStatusRequest(id=tx_id, status=CANCELLED)
        return lambda: tx_stub.UpdateTransactionStatus(request, metadata=bob.md)

    assert error_of(cancel(pending.id)) == error_of(cancel(str(uuid.uuid4())))
    assert error_of(cancel(pending.id))[0] == grpc.StatusCode.NOT_FOUND

    def refund(tx_id: str) -> Any:
        request = payment_request(type=REFUND, refund_of=tx_id, amount_minor=1)
        return lambda: tx_stub.CreateTransaction(request, metadata=bob.md)

    assert error_of(refund(alices_payment.id)) == error_of(refund(str(uuid.uuid4())))
    for original in (pending, alices_payment):
        now = tx_stub.GetTransaction(pb.GetTransactionRequest(id=original.id), metadata=alice.md).transaction
        assert now == original


def test_listing_shows_only_the_callers_own_transactions(
    tx_stub: Any, alice: Caller, bob: Caller, alices_payment: Any
) -> None:
    assert tx_stub.ListTransactions(pb.ListTransactionsRequest(), metadata=bob.md).transactions == []
    with pytest.raises(grpc.RpcError) as caught:
        tx_stub.ListTransactions(pb.ListTransactionsRequest(user_id=alice.id), metadata=bob.md)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_admin_may_read_and_list_any_users_transactions(
    tx_stub: Any, alice: Caller, admin_user: Caller, alices_payment: Any
) -> None:
    got = tx_stub.GetTransaction(pb.GetTransactionRequest(id=alices_payment.id), metadata=admin_user.md)
    assert got.transaction == alices_payment
    listed = tx_stub.ListTransactions(pb.ListTransactionsRequest(user_id=alice.id), metadata=admin_user.md)
    assert [t.id for t in listed.transactions] == [alices_payment.id]
