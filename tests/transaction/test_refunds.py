"""Refunds return money from a COMPLETED payment and never more than it, even when racing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, details_of
from tests.transaction.builders import CANCELLED, COMPLETED, FAILED, REFUND, payment_request


def refund_request(payment: Any, amount: int, **fields: Any) -> Any:
    return payment_request(
        type=REFUND, refund_of=payment.id, amount_minor=amount, currency=payment.currency, **fields
    )


def reason_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = details_of(caught.value)
    return details.code, details.reason


def get(tx_stub: Any, caller: Caller, tx_id: str) -> Any:
    return tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx_id), metadata=caller.md).transaction


def test_a_refund_of_a_completed_payment_counts_against_it(
    tx_stub: Any, alice: Caller, completed_payment: Any
) -> None:
    refund = tx_stub.CreateTransaction(refund_request(completed_payment, 300), metadata=alice.md).transaction
    assert (refund.type, refund.refund_of, refund.refunded_minor) == (REFUND, completed_payment.id, 0)
    payment = get(tx_stub, alice, completed_payment.id)
    assert payment.refunded_minor == 300 and payment.etag != completed_payment.etag


def test_a_refund_over_the_remaining_amount_is_refused(
    tx_stub: Any, alice: Caller, completed_payment: Any
) -> None:
    tx_stub.CreateTransaction(refund_request(completed_payment, 700), metadata=alice.md)
    over = refund_request(completed_payment, 301)
    assert reason_of(lambda: tx_stub.CreateTransaction(over, metadata=alice.md)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFUND_EXCEEDS_REMAINING",
    )
    tx_stub.CreateTransaction(refund_request(completed_payment, 300), metadata=alice.md)


def test_only_a_completed_payment_in_the_same_currency_can_be_refunded(
    tx_stub: Any, alice: Caller, create: Callable[..., Any], completed_payment: Any
) -> None:
    pending = create(alice)
    other_currency = payment_request(
        type=REFUND, refund_of=completed_payment.id, amount_minor=1, currency="USD"
    )
    refund = tx_stub.CreateTransaction(refund_request(completed_payment, 1), metadata=alice.md).transaction
    for request in (refund_request(pending, 1), other_currency, refund_request(refund, 1)):
        assert reason_of(lambda r=request: tx_stub.CreateTransaction(r, metadata=alice.md)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "REFUND_TARGET_INVALID",
        )


def test_a_refund_of_a_missing_payment_is_not_found(
    tx_stub: Any, alice: Caller, completed_payment: Any
) -> None:
    missing = payment_request(type=REFUND, refund_of=str(uuid.uuid4()), amount_minor=1)
    assert (
        reason_of(lambda: tx_stub.CreateTransaction(missing, metadata=alice.md))[0]
        == grpc.StatusCode.NOT_FOUND
    )


def test_concurrent_refunds_never_exceed_the_payment(
    tx_stub: Any, alice: Caller, completed_payment: Any, db_engine: Engine
) -> None:
    def attempt(_: int) -> Any:
        try:
            return tx_stub.CreateTransaction(
                refund_request(completed_payment, 150), metadata=alice.md
            ).transaction
        except grpc.RpcError as err:
            return details_of(err).reason

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(attempt, range(24)))
    accepted = [r for r in results if not isinstance(r, str)]
    assert len(accepted) == 6  # 6 x 150 = 900 of 1000; a seventh would exceed
    assert set(r for r in results if isinstance(r, str)) == {"REFUND_EXCEEDS_REMAINING"}
    with db_engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT coalesce(sum(amount_minor), 0) FROM payments.transactions"
                " WHERE refund_of = :p AND status NOT IN ('FAILED', 'CANCELLED')"
            ),
            {"p": completed_payment.id},
        ).scalar_one()
    assert live == 900 == get(tx_stub, alice, completed_payment.id).refunded_minor


def test_a_failed_or_cancelled_refund_gives_its_amount_back(
    tx_stub: Any, alice: Caller, completed_payment: Any, settle: Callable[..., Any]
) -> None:
    first = tx_stub.CreateTransaction(refund_request(completed_payment, 1000), metadata=alice.md).transaction
    settle(first.id, FAILED)
    second = tx_stub.CreateTransaction(refund_request(completed_payment, 1000), metadata=alice.md).transaction
    update = pb.UpdateTransactionStatusRequest(id=second.id, status=CANCELLED)
    tx_stub.UpdateTransactionStatus(update, metadata=alice.md)
    assert get(tx_stub, alice, completed_payment.id).refunded_minor == 0
    third = tx_stub.CreateTransaction(refund_request(completed_payment, 1000), metadata=alice.md).transaction
    assert settle(third.id, COMPLETED).status == COMPLETED
    assert get(tx_stub, alice, completed_payment.id).refunded_minor == 1000


def test_replaying_a_refund_after_the_payment_is_used_up_returns_the_original(
    tx_stub: Any, alice: Caller, completed_payment: Any
) -> None:
    request = refund_request(completed_payment, 1000)
    original = tx_stub.CreateTransaction(request, metadata=alice.md).transaction
    assert tx_stub.CreateTransaction(request, metadata=alice.md).transaction == original
