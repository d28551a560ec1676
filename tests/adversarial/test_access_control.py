"""Every RPC aimed at another user's data, by another user and by tokens without the needed scope.

tests/transaction/test_isolation.py shows the NOT_FOUND answers of one
intruder; here every RPC meets every kind of intruder, plus borrowed page
tokens and idempotency keys, and the owner's rows must be unchanged and unseen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.tools import record, snapshot
from tests.helpers import Caller, details_of
from tests.transaction.builders import COMPLETED, REFUND, payment_request

OK, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED


def rpcs(owner: Caller, pending: Any, payment: Any) -> dict[str, Callable[[Any, Any], Any]]:
    """Every RPC, aimed at the owner's data; each returns the response so that leaks can be looked for."""
    return {
        "Create a refund of the owner's payment": lambda s, md: s.CreateTransaction(
            payment_request(type=REFUND, refund_of=payment.id, amount_minor=1), metadata=md
        ),
        "Create with the owner's exact request and key": lambda s, md: s.CreateTransaction(
            payment_request(
                idempotency_key=pending.idempotency_key,
                amount_minor=pending.amount_minor,
                description=pending.description,
                metadata=dict(pending.metadata),
            ),
            metadata=md,
        ),
        "Get the owner's transaction": lambda s, md: s.GetTransaction(
            pb.GetTransactionRequest(id=pending.id), metadata=md
        ),
        "List the owner's transactions by user_id": lambda s, md: s.ListTransactions(
            pb.ListTransactionsRequest(user_id=owner.id), metadata=md
        ),
        "List one's own transactions": lambda s, md: s.ListTransactions(
            pb.ListTransactionsRequest(), metadata=md
        ),
        "Cancel the owner's transaction": lambda s, md: s.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=pending.id, status=pb.TRANSACTION_STATUS_CANCELLED),
            metadata=md,
        ),
        "Complete the owner's transaction": lambda s, md: s.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=pending.id, status=COMPLETED), metadata=md
        ),
        "Fail the owner's payment": lambda s, md: s.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=payment.id, status=pb.TRANSACTION_STATUS_FAILED), metadata=md
        ),
        "List the events of the owner's transaction": lambda s, md: s.ListTransactionEvents(
            pb.ListTransactionEventsRequest(transaction_id=pending.id), metadata=md
        ),
    }


# what each kind of intruder must get from each RPC
EXPECTED = {
    "another user": {
        "Create a refund of the owner's payment": NOT_FOUND,
        "Create with the owner's exact request and key": OK,  # a new row of their own (keys are per user)
        "Get the owner's transaction": NOT_FOUND,
        "List the owner's transactions by user_id": DENIED,
        "List one's own transactions": OK,
        "Cancel the owner's transaction": NOT_FOUND,
        "Complete the owner's transaction": DENIED,
        "Fail the owner's payment": DENIED,
        "List the events of the owner's transaction": NOT_FOUND,
    },
    "a service principal without scopes": {
        "Create a refund of the owner's payment": DENIED,
        "Create with the owner's exact request and key": DENIED,
        "Get the owner's transaction": NOT_FOUND,
        "List the owner's transactions by user_id": DENIED,
        "List one's own transactions": OK,
        "Cancel the owner's transaction": NOT_FOUND,
        "Complete the owner's transaction": DENIED,
        "Fail the owner's payment": DENIED,
        "List the events of the owner's transaction": NOT_FOUND,
    },
    "a service principal with unrelated scopes": {},  # same as without scopes, filled below
    "a settler (settle scope only)": {
        # may read and settle what it must settle, but owns and lists nothing of anyone
        "Create a refund of the owner's payment": DENIED,
        "Create with the owner's exact request and key": DENIED,
        "List the owner's transactions by user_id": DENIED,
        "List one's own transactions": OK,
    },
}
EXPECTED["a service principal with unrelated scopes"] = EXPECTED["a service principal without scopes"]


def test_every_rpc_by_an_intruder_gets_the_spec_code_and_the_owner_data_is_unchanged_and_unseen(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    make_service_principal: Callable[[list[str]], Caller],
    settle_client: Caller,
    owner_with_data: tuple[Caller, Any, Any],
    db_engine: Engine,
) -> None:
    owner, pending, payment = owner_with_data
    intruders = {
        "another user": new_user(),
        "a service principal without scopes": make_service_principal([]),
        "a service principal with unrelated scopes": make_service_principal(["transactions:read", "admin"]),
        "a settler (settle scope only)": settle_client,
    }
    before = snapshot(db_engine, owner.id)
    owner_ids = {pending.id, payment.id}
    wrong: dict[tuple[str, str], Any] = {}
    calls = 0
    for who, intruder in intruders.items():
        for name, call in rpcs(owner, pending, payment).items():
            if name not in EXPECTED[who]:
                continue
            calls += 1
            try:
                reply = call(tx_stub, intruder.md)
                code = OK
            except grpc.RpcError as err:
                reply, code = None, err.code()
            if code != EXPECTED[who][name]:
                wrong[(who, name)] = code
            if reply is not None:
                shown = list(getattr(reply, "transactions", [])) + (
                    [reply.transaction] if "transaction" in reply.DESCRIPTOR.fields_by_name else []
                )
                if any(t.id in owner_ids or t.user_id == owner.id for t in shown):
                    wrong[(who, name)] = "saw the owner's data"
    assert wrong == {}
    assert snapshot(db_engine, owner.id) == before
    record(
        "access control: intruders x every RPC",
        trials=len(intruders),
        requests=calls,
        failures=len(wrong),
    )


def test_another_users_page_token_is_refused_even_for_an_admin_listing_the_same_user(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    admin_user: Caller,
    db_engine: Engine,
) -> None:
    owner, intruder = new_user(), new_user()
    for _ in range(3):
        create(owner)
    page = tx_stub.ListTransactions(pb.ListTransactionsRequest(page_size=1), metadata=owner.md)
    assert page.next_page_token
    attempts = {
        "another user, same filter": (intruder, pb.ListTransactionsRequest(page_size=1)),
        "another user naming the owner": (
            intruder,
            pb.ListTransactionsRequest(page_size=1, user_id=owner.id),
        ),
        "an admin naming the owner": (admin_user, pb.ListTransactionsRequest(page_size=1, user_id=owner.id)),
    }
    before = snapshot(db_engine, owner.id)
    codes = {}
    for name, (who, request) in attempts.items():
        request.page_token = page.next_page_token
        with pytest.raises(grpc.RpcError) as caught:
            tx_stub.ListTransactions(request, metadata=who.md)
        codes[name] = caught.value.code()
        if codes[name] == grpc.StatusCode.INVALID_ARGUMENT:
            assert "page_token" in details_of(caught.value).violations
    assert codes == {
        "another user, same filter": grpc.StatusCode.INVALID_ARGUMENT,
        "another user naming the owner": DENIED,  # refused before the token is even read
        "an admin naming the owner": grpc.StatusCode.INVALID_ARGUMENT,
    }
    assert snapshot(db_engine, owner.id) == before
    record(
        "access control: borrowed page tokens", trials=len(attempts), requests=len(attempts) + 1, failures=0
    )


def test_another_users_idempotency_key_never_returns_or_changes_the_owners_transaction(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    db_engine: Engine,
) -> None:
    owner, intruder = new_user(), new_user()
    payment = settle(create(owner, amount_minor=900).id)
    refund_key = f"refund-{uuid.uuid4()}"
    owners_refund = tx_stub.CreateTransaction(
        payment_request(type=REFUND, refund_of=payment.id, amount_minor=100, idempotency_key=refund_key),
        metadata=owner.md,
    ).transaction
    before = snapshot(db_engine, owner.id)
    # the owner's refund request replayed verbatim by the intruder: the payment is not theirs
    with pytest.raises(grpc.RpcError) as caught:
        tx_stub.CreateTransaction(
            payment_request(type=REFUND, refund_of=payment.id, amount_minor=100, idempotency_key=refund_key),
            metadata=intruder.md,
        )
    assert caught.value.code() == NOT_FOUND
    # the owner's payment key with a different request: a fresh row of the intruder's, never the owner's
    theirs = tx_stub.CreateTransaction(
        payment_request(idempotency_key=payment.idempotency_key, amount_minor=1), metadata=intruder.md
    ).transaction
    assert theirs.user_id == intruder.id and theirs.id not in {payment.id, owners_refund.id}
    assert snapshot(db_engine, owner.id) == before
    record("access control: borrowed idempotency keys", trials=2, requests=2, failures=0)
