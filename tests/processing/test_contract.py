"""The contract around processed payments: what callers may send and do, over real gRPC."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.helpers import Caller, SecretWatch, details_of
from tests.processing.harness import create_payment, settled
from tests.servers import tx_settings

PAN = "4242 4242 4242 4242"
pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def other_tx(database_url: str, auth_address: str) -> Iterator[Callable[[str | None], Any]]:
    """Factory: a stub of a transaction server of its own, with PAYMENT_PROCESSOR as given."""
    from transaction_service.app import start

    running: list[Any] = []
    channels: list[grpc.Channel] = []

    def _make(processor: str | None) -> Any:
        server = start(tx_settings(database_url, auth_address, payment_processor=processor))
        running.append(server)
        channels.append(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        return transaction_pb2_grpc.TransactionServiceStub(channels[-1])

    yield _make
    for channel in channels:
        channel.close()
    for server in running:
        server.stop()


def _violations(err: grpc.RpcError) -> dict[str, str]:
    return details_of(err).violations


@pytest.mark.parametrize("value", [PAN, "4242424242424242", "pm_4000056655665556", "tok_5555-5555-5555-4444"])
def test_a_card_number_is_invalid_argument_and_never_stored_or_logged(
    value: str, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine, secret_watch: SecretWatch
) -> None:
    secret_watch.secrets.add(value)  # the session fails if it reaches any log line
    user = new_user()
    with pytest.raises(grpc.RpcError) as caught:
        create_payment(tx_stub, user, value)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "card number" in _violations(caught.value)["payment_method"]
    assert value not in str(caught.value.details()) and value not in str(details_of(caught.value))
    with db_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM payments.transactions WHERE user_id = :u"), {"u": user.id}
        ).scalar_one()
    assert stored == 0  # nothing was written


def test_a_refund_takes_no_payment_method_and_spaces_are_no_token(
    tx_stub: Any, new_user: Callable[..., Caller]
) -> None:
    user = new_user()
    paid = settled(tx_stub, user, create_payment(tx_stub, user, "pm_card_visa").id)
    refund = pb.CreateTransactionRequest(
        type=pb.TRANSACTION_TYPE_REFUND,
        amount_minor=10,
        currency="EUR",
        idempotency_key="r1",
        refund_of=paid.id,
        payment_method="pm_card_visa",
    )
    with pytest.raises(grpc.RpcError) as caught:
        tx_stub.CreateTransaction(refund, metadata=user.md)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "payment_method" in _violations(caught.value)
    with pytest.raises(grpc.RpcError) as spaced:
        create_payment(tx_stub, user, "pm card visa")
    assert "payment_method" in _violations(spaced.value)


def test_processed_payments_are_settled_only_by_the_processor_and_processing_by_nobody(
    tx_stub: Any, new_user: Callable[..., Caller], settle_client: Caller
) -> None:
    user = new_user()
    paid = settled(tx_stub, user, create_payment(tx_stub, user, "pm_card_declined").id)
    assert paid.status == pb.TRANSACTION_STATUS_FAILED and paid.processed
    for target in (pb.TRANSACTION_STATUS_COMPLETED, pb.TRANSACTION_STATUS_PROCESSING):
        with pytest.raises(grpc.RpcError) as caught:
            tx_stub.UpdateTransactionStatus(
                pb.UpdateTransactionStatusRequest(id=paid.id, status=target), metadata=settle_client.md
            )
        expected = (
            grpc.StatusCode.FAILED_PRECONDITION
            if target == pb.TRANSACTION_STATUS_COMPLETED
            else (grpc.StatusCode.INVALID_ARGUMENT)
        )
        assert caught.value.code() == expected, caught.value.details()
    # a repeat of the status it has is still the no-op it always was
    repeat = tx_stub.UpdateTransactionStatus(
        pb.UpdateTransactionStatusRequest(id=paid.id, status=pb.TRANSACTION_STATUS_FAILED),
        metadata=settle_client.md,
    )
    assert repeat.transaction.etag == paid.etag


def test_a_queued_payment_may_be_cancelled_but_not_settled_by_hand(
    other_tx: Callable[[str | None], Any],
    new_user: Callable[..., Caller],
    settle_client: Caller,
    db_engine: Engine,
) -> None:
    stub = other_tx("nobody")  # a processor no worker serves: the payment waits in the queue
    user = new_user()
    queued = create_payment(stub, user, "pm_card_visa")
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=queued.id, status=pb.TRANSACTION_STATUS_COMPLETED),
            metadata=settle_client.md,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(caught.value).reason == "SETTLED_BY_PROCESSOR"
    cancelled = stub.UpdateTransactionStatus(
        pb.UpdateTransactionStatusRequest(id=queued.id, status=pb.TRANSACTION_STATUS_CANCELLED),
        metadata=user.md,
    ).transaction
    assert cancelled.status == pb.TRANSACTION_STATUS_CANCELLED


def test_without_a_processor_a_payment_method_is_refused_and_plain_payments_still_work(
    other_tx: Callable[[str | None], Any], new_user: Callable[..., Caller]
) -> None:
    stub = other_tx(None)
    user = new_user()
    with pytest.raises(grpc.RpcError) as caught:
        create_payment(stub, user, "pm_card_visa")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(caught.value).reason == "PROCESSOR_NOT_CONFIGURED"
    plain = stub.CreateTransaction(
        pb.CreateTransactionRequest(
            type=pb.TRANSACTION_TYPE_PAYMENT, amount_minor=5, currency="EUR", idempotency_key="plain"
        ),
        metadata=user.md,
    ).transaction
    assert plain.status == pb.TRANSACTION_STATUS_PENDING and not plain.processed


def test_the_database_refuses_a_move_the_status_machine_forbids(
    db_engine: Engine, tx_stub: Any, new_user: Callable[..., Caller]
) -> None:
    user = new_user()
    paid = settled(tx_stub, user, create_payment(tx_stub, user, "pm_card_visa").id)
    from sqlalchemy.exc import IntegrityError

    for target in ("PENDING", "PROCESSING", "FAILED"):
        with pytest.raises(IntegrityError, match="cannot become"), db_engine.begin() as conn:
            conn.execute(
                text("UPDATE payments.transactions SET status = :s WHERE id = :id"),
                {"s": target, "id": paid.id},
            )
