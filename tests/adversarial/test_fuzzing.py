"""Property-based fuzzing of every TransactionService RPC with hostile field values and raw bytes.

Over at least 10,000 requests a run (counted in `SENT`), no answer may be
UNKNOWN or INTERNAL (SPEC §4: those mean a server bug), none may be
UNAVAILABLE (nothing here overloads the server), and afterwards every money
invariant still holds. ADVERSARIAL_FUZZ_SCALE multiplies the example counts.
The hostile values are tests/adversarial/fuzzing.py's strategies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.fuzzing import (
    ENUM,
    FORBIDDEN,
    INT32,
    INT64,
    METHODS,
    RAW,
    SCALE,
    SPECIAL_TEXT,
    examples,
    hostile_text,
    timestamps,
    unicode_text,
    uuid_forms,
)
from tests.adversarial.tools import SERVICE, assert_money_invariants, record
from tests.helpers import Caller
from tests.transaction.builders import COMPLETED, payment_request

pytestmark = pytest.mark.slow

SENT: Counter[str] = Counter()  # requests sent by this module, per RPC
CODES: Counter[str] = Counter()
MINIMUM_REQUESTS = 10_000


@dataclass
class Arena:
    """Who calls, and real ids worth aiming at (own, foreign, settled), built once per module."""

    callers: list[Caller]
    known_ids: list[str]


@pytest.fixture(scope="module")
def arena(tx_stub: Any, new_user: Callable[..., Caller], settle_client: Caller, admin_user: Caller) -> Arena:
    owner, other = new_user(), new_user()
    ids = []
    for who in (owner, other):
        for amount in (1000, 5000):
            tx = tx_stub.CreateTransaction(payment_request(amount_minor=amount), metadata=who.md).transaction
            ids.append(tx.id)
        settled = tx_stub.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=tx.id, status=COMPLETED), metadata=settle_client.md
        ).transaction
        ids.append(settled.id)
    return Arena([owner, owner, other, settle_client, admin_user], ids)


def send(method: str, call: Callable[[], Any]) -> grpc.StatusCode:
    SENT[method] += 1
    try:
        call()
        code = grpc.StatusCode.OK
    except grpc.RpcError as err:
        code = err.code()
    CODES[code.name] += 1
    assert code not in FORBIDDEN, (method, code)
    return code


# ---- one property per RPC -----------------------------------------------------------------------


def mostly(valid: Any, hostile: Any) -> Any:
    """Valid three times in four, so that whole requests often get past validation to the data."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: valid if ok else hostile)


def test_hostile_create_requests_never_get_unknown_internal_or_unavailable(
    tx_stub: Any, arena: Arena
) -> None:
    plain_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
    request = st.fixed_dictionaries(
        {
            "type": mostly(st.just(pb.TRANSACTION_TYPE_PAYMENT), ENUM),
            "amount_minor": mostly(st.integers(min_value=1, max_value=10**6), INT64),
            "currency": mostly(st.sampled_from(["EUR", "JPY", "KWD", "USD"]), hostile_text),
            "description": mostly(plain_text, hostile_text),
            "metadata": mostly(
                st.dictionaries(plain_text.filter(bool).map(lambda k: k[:40]), plain_text, max_size=5),
                st.dictionaries(
                    st.one_of(st.sampled_from(SPECIAL_TEXT), unicode_text),
                    st.one_of(st.sampled_from(SPECIAL_TEXT), unicode_text, st.just("v" * 501)),
                    max_size=55,
                ),
            ),
            "idempotency_key": mostly(st.uuids().map(str), hostile_text),
            "refund_of": st.one_of(st.just(""), st.just(""), uuid_forms(arena.known_ids)),
        }
    )

    @examples(3000)
    @given(data=request, who=st.sampled_from(arena.callers))
    def prop(data: dict[str, Any], who: Caller) -> None:
        if data["refund_of"] and data["type"] == pb.TRANSACTION_TYPE_PAYMENT:
            data["type"] = pb.TRANSACTION_TYPE_REFUND  # aim refunds at real payments too
        message = pb.CreateTransactionRequest(**data)
        send("CreateTransaction", lambda: tx_stub.CreateTransaction(message, metadata=who.md, timeout=10))

    prop()


def test_hostile_get_and_event_requests_never_get_unknown_internal_or_unavailable(
    tx_stub: Any, arena: Arena
) -> None:
    @examples(1500)
    @given(tx_id=uuid_forms(arena.known_ids), who=st.sampled_from(arena.callers), events=st.booleans())
    def prop(tx_id: str, who: Caller, events: bool) -> None:
        if events:
            request = pb.ListTransactionEventsRequest(transaction_id=tx_id)
            send(
                "ListTransactionEvents",
                lambda: tx_stub.ListTransactionEvents(request, metadata=who.md, timeout=10),
            )
        else:
            request = pb.GetTransactionRequest(id=tx_id)
            send("GetTransaction", lambda: tx_stub.GetTransaction(request, metadata=who.md, timeout=10))

    prop()


def test_hostile_list_requests_never_get_unknown_internal_or_unavailable(tx_stub: Any, arena: Arena) -> None:
    @examples(2000)
    @given(
        page_size=INT32,
        page_token=st.one_of(hostile_text, st.binary(max_size=60).map(lambda b: b.hex()), st.just("AAAA")),
        status=ENUM,
        tx_type=ENUM,
        currency=st.one_of(st.sampled_from(["", "EUR", "JPY"]), hostile_text),
        created_from=timestamps(),
        created_to=timestamps(),
        user_id=st.one_of(st.just(""), uuid_forms(arena.known_ids)),
        who=st.sampled_from(arena.callers),
    )
    def prop(
        page_size: int,
        page_token: str,
        status: int,
        tx_type: int,
        currency: str,
        created_from: Timestamp | None,
        created_to: Timestamp | None,
        user_id: str,
        who: Caller,
    ) -> None:
        request = pb.ListTransactionsRequest(
            page_size=page_size,
            page_token=page_token,
            status=status,
            type=tx_type,
            currency=currency,
            user_id=user_id,
        )
        if created_from is not None:
            request.created_from.CopyFrom(created_from)
        if created_to is not None:
            request.created_to.CopyFrom(created_to)
        send("ListTransactions", lambda: tx_stub.ListTransactions(request, metadata=who.md, timeout=10))

    prop()


def test_hostile_status_updates_never_get_unknown_internal_or_unavailable(tx_stub: Any, arena: Arena) -> None:
    @examples(2000)
    @given(
        tx_id=uuid_forms(arena.known_ids),
        status=ENUM,
        etag=st.one_of(
            st.sampled_from(["", "1", "2", "01", "9999999999", "99999999999", "-1", "1.0", "\u0661"]),
            hostile_text,
        ),
        reason=hostile_text,
        who=st.sampled_from(arena.callers),
    )
    def prop(tx_id: str, status: int, etag: str, reason: str, who: Caller) -> None:
        request = pb.UpdateTransactionStatusRequest(id=tx_id, status=status, etag=etag, reason=reason)
        send(
            "UpdateTransactionStatus",
            lambda: tx_stub.UpdateTransactionStatus(request, metadata=who.md, timeout=10),
        )

    prop()


def test_raw_undecodable_or_odd_bytes_to_every_rpc_never_get_unknown_or_internal(
    tx_address: str, arena: Arena
) -> None:
    with grpc.insecure_channel(tx_address) as channel:
        calls = {m: channel.unary_unary(f"/{SERVICE}/{m}") for m in METHODS}

        @examples(1600)
        @given(method=st.sampled_from(METHODS), payload=RAW, who=st.sampled_from(arena.callers))
        def prop(method: str, payload: bytes, who: Caller) -> None:
            send(f"{method} (raw bytes)", lambda: calls[method](payload, metadata=who.md, timeout=10))

        prop()


def test_the_fuzzing_run_sent_ten_thousand_requests_and_the_money_invariants_still_hold(
    db_engine: Engine,
) -> None:
    total = sum(SENT.values())
    checked = assert_money_invariants(db_engine)
    record(
        "fuzzing: hostile requests to every RPC -> no UNKNOWN/INTERNAL/UNAVAILABLE, invariants hold",
        trials=total,
        requests=total,
        per_rpc=dict(SENT),
        codes=dict(CODES),
        transactions_checked=checked,
        failures=0,
    )
    assert total >= MINIMUM_REQUESTS * min(SCALE, 1.0)
    assert {"CreateTransaction", "GetTransaction", "ListTransactions", "UpdateTransactionStatus"} <= set(SENT)
    assert CODES["OK"] > 0 and CODES["INVALID_ARGUMENT"] > 0  # it reached the data and the validation
