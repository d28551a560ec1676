"""Forged tokens on every TransactionService RPC: each is UNAUTHENTICATED and changes nothing.

Every forgery of tests/adversarial/forgeries.py (RFC 8725 attacks, and a few more: kid holding
path or SQL text, embedded keys, identity hints in other metadata) is aimed at the transaction
service, whose verifier holds public keys only; identity hints next to a valid token are ignored,
the caller acts as itself only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.forgeries import UNAUTHENTICATED, attacks, bearer
from tests.adversarial.tools import code_of, every_rpc, record, snapshot
from tests.forge import claims_of, current_signing_key, sign
from tests.helpers import Caller


@pytest.fixture
def signing(db_engine: Engine) -> tuple[str, Any, dict[str, Any]]:
    """The auth service's newest private key, as a key thief could read it."""
    return current_signing_key(db_engine)


def test_every_forged_or_misused_token_is_unauthenticated_on_every_rpc_and_changes_nothing(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    owner_with_data: tuple[Caller, Any, Any],
    signing: tuple[str, Any, dict[str, Any]],
    db_engine: Engine,
) -> None:
    owner, pending, payment = owner_with_data
    kid, key, _ = signing
    # control: the same requests with a correctly signed token do reach the data
    control = bearer(sign(claims_of(owner.id), key, kid))
    for name in ("GetTransaction", "ListTransactions", "ListTransactionEvents"):
        assert (
            code_of(lambda n=name: every_rpc(pending.id, payment.id)[n](tx_stub, control))
            == grpc.StatusCode.OK
        )
    before = snapshot(db_engine, owner.id)
    with db_engine.connect() as conn:
        started = conn.execute(text("SELECT now()")).scalar_one()
    failures: dict[tuple[str, str], grpc.StatusCode] = {}
    calls = 0
    for attack, metadata in attacks(owner, new_user(), signing).items():
        rpcs = every_rpc(pending.id, payment.id)
        for rpc, call in rpcs.items():
            calls += 1
            code = code_of(lambda c=call, md=metadata: c(tx_stub, md))
            if code != UNAUTHENTICATED:
                failures[(attack, rpc)] = code
    assert failures == {}
    assert snapshot(db_engine, owner.id) == before
    with db_engine.connect() as conn:
        leaked = conn.execute(  # a forged create under any identity
            text(
                "SELECT count(*) FROM payments.transactions"
                " WHERE created_at >= :t AND idempotency_key LIKE 'adv-%'"
            ),
            {"t": started},
        ).scalar_one()
    assert leaked == 0
    record(
        "tokens: forgeries x every transaction RPC -> UNAUTHENTICATED, no side effect",
        trials=len(attacks(owner, owner, signing)),
        requests=calls,
        failures=len(failures),
    )


HINTS = ("x-user-id", "x-forwarded-user", "x-principal", "x-subject", "user_id", "x-admin")


def test_identity_hints_in_other_metadata_are_ignored_next_to_a_valid_token(
    tx_stub: Any, new_user: Callable[..., Caller], owner_with_data: tuple[Caller, Any, Any], db_engine: Engine
) -> None:
    owner, pending, payment = owner_with_data
    intruder = new_user()
    hinted = intruder.md + tuple((h, owner.id) for h in HINTS) + (("x-admin", "true"), ("x-roles", "admin"))
    before = snapshot(db_engine, owner.id)
    rpcs = every_rpc(pending.id, payment.id)
    codes = {name: code_of(lambda c=call: c(tx_stub, hinted)) for name, call in rpcs.items()}
    assert codes == {
        "CreateTransaction": grpc.StatusCode.OK,  # as the intruder, for the intruder
        "CreateTransaction(refund)": grpc.StatusCode.NOT_FOUND,
        "GetTransaction": grpc.StatusCode.NOT_FOUND,
        "ListTransactions": grpc.StatusCode.OK,
        "UpdateTransactionStatus": grpc.StatusCode.NOT_FOUND,
        "ListTransactionEvents": grpc.StatusCode.NOT_FOUND,
    }
    listed = tx_stub.ListTransactions(pb.ListTransactionsRequest(), metadata=hinted).transactions
    assert [t.user_id for t in listed] == [intruder.id]  # only the row the intruder created just now
    assert snapshot(db_engine, owner.id) == before
    record(
        "tokens: identity hints in other metadata ignored",
        trials=len(HINTS),
        requests=len(codes) + 1,
        failures=0,
    )
