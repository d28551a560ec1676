"""Refunds through the processor, and the reconciler's two decisions for what it never received."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, details_of
from tests.processing.harness import (
    WorkerProcess,
    charges,
    create_payment,
    reference,
    settled,
    state,
    wait_final,
)

pytestmark = pytest.mark.usefixtures("worker")


def _refund(tx_stub: Any, user: Caller, payment_id: str, amount: int, key: str) -> Any:
    request = pb.CreateTransactionRequest(
        type=pb.TRANSACTION_TYPE_REFUND,
        amount_minor=amount,
        currency="EUR",
        idempotency_key=key,
        refund_of=payment_id,
    )
    return tx_stub.CreateTransaction(request, metadata=user.md).transaction


@pytest.mark.parametrize("method", ["pm_card_visa", "pm_card_async"])
def test_a_refund_of_a_processed_payment_is_refunded_by_the_processor_within_the_cap(
    method: str, worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    paid = settled(tx_stub, user, create_payment(tx_stub, user, method, amount=1000).id)
    assert paid.status == pb.TRANSACTION_STATUS_COMPLETED
    first = _refund(tx_stub, user, paid.id, 600, "refund-1")
    assert first.processed and first.status == pb.TRANSACTION_STATUS_PENDING
    with pytest.raises(grpc.RpcError) as caught:  # the cap counts the refund in flight
        _refund(tx_stub, user, paid.id, 500, "refund-2")
    assert details_of(caught.value).reason == "REFUND_EXCEEDS_REMAINING"
    done = settled(tx_stub, user, first.id)
    assert done.status == pb.TRANSACTION_STATUS_COMPLETED
    assert charges(worker.sandbox, reference(first.id), kind="refund") == 1
    assert state(db_engine, paid.id)["refunded_minor"] == 600
    assert state(db_engine, first.id)["statuses"][-1] == ("PROCESSING", "COMPLETED")


def _leave_processing(db_engine: Engine, tx_stub: Any, user: Caller, submitted_ago: str) -> str:
    """A payment as a worker killed between PENDING -> PROCESSING and its submission leaves it.

    Created as a plain payment (nobody processes it), then given the state that worker would
    have written: the sandbox's, PROCESSING with its event, its job sent `submitted_ago` and due.
    """
    plain = tx_stub.CreateTransaction(
        pb.CreateTransactionRequest(
            type=pb.TRANSACTION_TYPE_PAYMENT, amount_minor=777, currency="EUR", idempotency_key="stranded"
        ),
        metadata=user.md,
    ).transaction
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE payments.transactions SET processor = 'sandbox', payment_method = 'pm_card_visa',"
                " status = 'PROCESSING', version = version + 1 WHERE id = :id"
            ),
            {"id": plain.id},
        )
        conn.execute(
            text(
                "INSERT INTO payments.transaction_events (transaction_id, old_status, new_status, actor)"
                " VALUES (:id, 'PENDING', 'PROCESSING', 'processor:sandbox')"
            ),
            {"id": plain.id},
        )
        conn.execute(
            text(
                "INSERT INTO payments.processor_jobs (transaction_id, submitted_at, due_at)"
                " VALUES (:id, now() - CAST(:ago AS interval), now())"
            ),
            {"id": plain.id, "ago": submitted_ago},
        )
    return str(plain.id)


def test_a_payment_the_processor_never_received_is_submitted_again_with_the_same_key(
    worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    tx_id = _leave_processing(db_engine, tx_stub, user, "1 second")
    final = wait_final(db_engine, tx_id)
    assert final["status"] == "COMPLETED"
    sources = [source for source, _outcome, _id in final["events"]]
    assert sources[:2] == ["lookup", "answer"], final["events"]  # looked up (never seen), then sent
    assert final["events"][0][1] == "NOT_FOUND"
    assert charges(worker.sandbox, reference(tx_id)) == 1


def test_after_the_give_up_time_a_payment_never_received_fails_as_processor_timeout(
    worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    tx_id = _leave_processing(db_engine, tx_stub, user, "2 hours")
    final = wait_final(db_engine, tx_id)
    assert (final["status"], final["failure_code"]) == ("FAILED", "processor_timeout")
    assert charges(worker.sandbox, reference(tx_id)) == 0  # and nothing was sent after giving up
    seen = settled(tx_stub, user, tx_id)
    assert seen.failure_code == "processor_timeout"
