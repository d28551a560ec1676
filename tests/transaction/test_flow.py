"""The whole journey through real stubs: register -> login -> create -> get -> list -> update -> events."""

from __future__ import annotations

import uuid
from typing import Any

from payments.auth.v1 import auth_pb2
from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller
from tests.transaction.builders import CANCELLED, PAYMENT, PENDING, payment_request


def test_a_new_user_creates_reads_lists_cancels_and_audits_a_payment(auth_stub: Any, tx_stub: Any) -> None:
    email, password = f"flow-{uuid.uuid4().hex[:10]}@example.com", f"pw-{uuid.uuid4().hex}"
    user = auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=password, full_name="Flow")).user
    tokens = auth_stub.Login(
        auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    ).tokens
    md = Caller(user.id, email, password, tokens.access_token).md

    created = tx_stub.CreateTransaction(
        payment_request(amount_minor=4999, currency="USD"), metadata=md
    ).transaction
    assert (created.user_id, created.type, created.status) == (user.id, PAYMENT, PENDING)
    assert (created.amount_minor, created.currency, created.refunded_minor) == (4999, "USD", 0)
    assert uuid.UUID(created.id) and created.etag and created.created_at.seconds > 0

    fetched = tx_stub.GetTransaction(pb.GetTransactionRequest(id=created.id), metadata=md).transaction
    assert fetched == created

    listed = tx_stub.ListTransactions(pb.ListTransactionsRequest(), metadata=md)
    assert [t.id for t in listed.transactions] == [created.id] and listed.next_page_token == ""

    update = pb.UpdateTransactionStatusRequest(
        id=created.id, status=CANCELLED, etag=created.etag, reason="oops"
    )
    cancelled = tx_stub.UpdateTransactionStatus(update, metadata=md).transaction
    assert cancelled.status == CANCELLED and cancelled.etag != created.etag
    assert cancelled.updated_at.ToDatetime() >= created.updated_at.ToDatetime()

    events = tx_stub.ListTransactionEvents(
        pb.ListTransactionEventsRequest(transaction_id=created.id), metadata=md
    )
    trail = [(e.old_status, e.new_status, e.actor, e.reason) for e in events.events]
    assert trail == [
        (pb.TRANSACTION_STATUS_UNSPECIFIED, PENDING, user.id, ""),
        (PENDING, CANCELLED, user.id, "oops"),
    ]
