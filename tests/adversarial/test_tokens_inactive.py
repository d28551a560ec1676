"""Still-unexpired tokens of inactive principals on every TransactionService RPC: all refused.

A token of a disabled or deleted account is UNAUTHENTICATED on every RPC; one of a disabled or
deleted service principal (settle scope) is UNAUTHENTICATED on every read and change (creates
stay PERMISSION_DENIED: services never create). Nothing is changed either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.forgeries import UNAUTHENTICATED
from tests.adversarial.tools import code_of, every_rpc, record, snapshot
from tests.helpers import Caller


@pytest.mark.parametrize("fate", ["disabled", "deleted"])
def test_a_token_of_a_disabled_or_deleted_account_is_unauthenticated_on_every_rpc(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    db_engine: Engine,
    fate: str,
) -> None:
    victim = new_user()
    if fate == "disabled":
        pending = create(victim)
        payment = settle(create(victim, amount_minor=900).id)
        pending_id, payment_id = pending.id, payment.id
    else:  # a deleted account can own nothing (the rows reference it), so aim at ids that exist
        other = new_user()
        pending_id, payment_id = create(other).id, settle(create(other, amount_minor=900).id).id
    with db_engine.begin() as conn:
        if fate == "disabled":
            conn.execute(text("UPDATE auth.users SET disabled = true WHERE id = :i"), {"i": victim.id})
        else:
            conn.execute(text("DELETE FROM auth.users WHERE id = :i"), {"i": victim.id})
    before = snapshot(db_engine, victim.id)
    rpcs = every_rpc(pending_id, payment_id)
    codes = {name: code_of(lambda c=call: c(tx_stub, victim.md)) for name, call in rpcs.items()}
    assert codes == dict.fromkeys(rpcs, UNAUTHENTICATED)
    assert snapshot(db_engine, victim.id) == before
    record(
        f"tokens: {fate} account's still-unexpired token refused", trials=1, requests=len(codes), failures=0
    )


@pytest.mark.parametrize("fate", ["disabled", "deleted"])
def test_a_token_of_a_disabled_or_deleted_service_principal_is_refused_on_every_rpc(
    tx_stub: Any,
    make_service_principal: Callable[[list[str]], Caller],
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    db_engine: Engine,
    fate: str,
) -> None:
    settler = make_service_principal(["transactions:settle"])
    owner = new_user()
    pending_id, payment_id = create(owner).id, settle(create(owner, amount_minor=900).id).id
    read = pb.GetTransactionRequest(id=pending_id)
    assert code_of(lambda: tx_stub.GetTransaction(read, metadata=settler.md)) == grpc.StatusCode.OK
    with db_engine.begin() as conn:
        verb = (
            "UPDATE auth.service_principals SET disabled = true"
            if fate == "disabled"
            else "DELETE FROM auth.service_principals"
        )
        conn.execute(text(f"{verb} WHERE id = :i"), {"i": settler.id})
    before = snapshot(db_engine, owner.id)
    rpcs = every_rpc(pending_id, payment_id)
    codes = {name: code_of(lambda c=call: c(tx_stub, settler.md)) for name, call in rpcs.items()}
    # service principals never create (refused before any look-up); everything else needs the principal
    expected = {
        name: grpc.StatusCode.PERMISSION_DENIED if name.startswith("CreateTransaction") else UNAUTHENTICATED
        for name in rpcs
    }
    assert codes == expected
    with pytest.raises(grpc.RpcError) as refused:
        tx_stub.GetTransaction(read, metadata=settler.md)
    assert refused.value.code() == UNAUTHENTICATED  # type: ignore[attr-defined]
    assert snapshot(db_engine, owner.id) == before
    record(
        f"tokens: {fate} service principal's still-unexpired token refused",
        trials=1,
        requests=len(codes) + 2,
        failures=0,
    )
