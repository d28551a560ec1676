"""Before anything is measured: the lean reference answers the four calls as the service does.

Get and List of the same rows must be equal messages (a list page's token aside); a Create, and
the cancelling Update of the row it created, must set the same fields to the same values on both,
except those that name the row (id, key, times). A mismatch stops the run: a ratio to a server
doing other work would mean nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc

from bench.users import User
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc

NAMING = frozenset({"id", "idempotency_key", "created_at", "updated_at"})


@dataclass(frozen=True)
class Replies:
    got: pb.Transaction
    page: list[pb.Transaction]
    created: pb.Transaction
    updated: pb.Transaction


def _fields(tx: pb.Transaction) -> dict[str, object]:
    named = {field.name for field, _ in tx.ListFields()}
    values: dict[str, object] = {
        field.name: value for field, value in tx.ListFields() if field.name not in NAMING
    }
    return {**values, "named": sorted(named & NAMING)}


def _calls(address: str, user: User, key: str) -> Replies:
    md = (("authorization", f"Bearer {user.token}"),)
    with grpc.insecure_channel(address) as channel:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        got = stub.GetTransaction(pb.GetTransactionRequest(id=user.ids[0]), metadata=md, timeout=10)
        page = stub.ListTransactions(pb.ListTransactionsRequest(page_size=50), metadata=md, timeout=10)
        if not page.next_page_token:
            raise RuntimeError(f"{address}: a first page of 50 has no next_page_token")
        create = pb.CreateTransactionRequest(
            type=pb.TRANSACTION_TYPE_PAYMENT,
            amount_minor=1250,
            currency="EUR",
            description="parity",
            metadata={"order": "bench"},
            idempotency_key=key,
        )
        created = stub.CreateTransaction(create, metadata=md, timeout=10).transaction
        cancel = pb.UpdateTransactionStatusRequest(
            id=created.id, status=pb.TRANSACTION_STATUS_CANCELLED, etag=created.etag, reason="parity"
        )
        updated = stub.UpdateTransactionStatus(cancel, metadata=md, timeout=10).transaction
    return Replies(got.transaction, list(page.transactions), created, updated)


def check(service: str, reference: str, user: User) -> None:
    """Raise RuntimeError unless both servers answer alike (`user` needs more than 50 rows)."""
    prefix = f"parity-{uuid.uuid4().hex[:8]}"
    ref = _calls(reference, user, f"{prefix}-ref")
    svc = _calls(service, user, f"{prefix}-svc")
    if ref.got != svc.got:
        raise RuntimeError(f"GetTransaction differs:\n{ref.got}\nvs the service's\n{svc.got}")
    # the service's page was read after the reference created its row: one row further on
    if svc.page[0] != ref.updated or svc.page[1:] != ref.page[:-1]:
        raise RuntimeError("ListTransactions pages differ")
    for name, one, other in (
        ("CreateTransaction", ref.created, svc.created),
        ("UpdateTransactionStatus", ref.updated, svc.updated),
    ):
        if _fields(one) != _fields(other):
            raise RuntimeError(f"{name} replies differ:\n{one}\nvs the service's\n{other}")
