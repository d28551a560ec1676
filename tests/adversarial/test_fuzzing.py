"""Property-based fuzzing of every TransactionService RPC with hostile field values and raw bytes.

Over at least 10,000 requests a run (counted in `SENT`), no answer may be
UNKNOWN or INTERNAL (SPEC §4: those mean a server bug), none may be
UNAVAILABLE (nothing here overloads the server), and afterwards every money
invariant still holds. ADVERSARIAL_FUZZ_SCALE multiplies the example counts.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.tools import BUG_CODES, SERVICE, assert_money_invariants, record
from tests.helpers import Caller
from tests.transaction.builders import COMPLETED, payment_request

pytestmark = pytest.mark.slow

SCALE = float(os.environ.get("ADVERSARIAL_FUZZ_SCALE", "1"))
SENT: Counter[str] = Counter()  # requests sent by this module, per RPC
CODES: Counter[str] = Counter()
MINIMUM_REQUESTS = 10_000
FORBIDDEN = BUG_CODES | {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def examples(n: int) -> Any:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        database=None,  # no .hypothesis folder in the tree; failures print their reproducing example
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# ---- hostile values ---------------------------------------------------------------------------

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "EUR\x00",
    "\u202eRLO",
    "\ufeffBOM",
    "e\u0301",  # decomposed é
    "\u00e9",
    "İ",  # upper case that grows when lowered
    "ß",
    "\U0001f4a9" * 30,
    "\u0000" * 10,
    "\r\n\t",
    "' OR '1'='1' --",
    "'; DROP TABLE payments.transactions; --",
    "../../../../etc/passwd",
    "%s%s%n%x",
    "${jndi:ldap://evil}",
    "<script>alert(1)</script>",
    "eur",
    "EUR",
    "JPY",
    "XTS",
    "XAU",
    "E U",
    "\uff25\uff35\uff32",  # full-width EUR
]
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
hostile_text = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    unicode_text,
    unicode_text,
    st.sampled_from(SPECIAL_TEXT),
    st.integers(min_value=100, max_value=150_000).map(lambda n: "x" * n),  # oversized, under 1 MiB
)
INT64 = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(
        [0, -1, 1, 2**63 - 1, -(2**63), 10**12, 10**12 + 1, 10**14, 10**14 + 1, 10**15, 2**53 + 1]
    ),
)
INT32 = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31 - 1), st.sampled_from([0, 1, 2, 3, 4, 5, -1, 500, 501])
)
ENUM = st.one_of(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.integers(min_value=0, max_value=6))


def uuid_forms(known: list[str]) -> Any:
    sample = str(uuid.uuid4())
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(
            [
                "",
                sample.upper(),
                sample.replace("-", ""),
                "{" + sample + "}",
                "urn:uuid:" + sample,
                sample + "\x00",
                " " + sample,
                sample[:-1],
                sample + "0",
                "00000000-0000-0000-0000-000000000000",
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "g" * 8 + sample[8:],
                "1" * 32,
                "1" * 10_000,
            ]
        ),
        st.uuids().map(str),
        hostile_text,
    )


def timestamps() -> Any:
    return st.one_of(
        st.none(),
        st.builds(
            lambda s, n: Timestamp(seconds=s, nanos=n),
            st.one_of(INT64, st.integers(min_value=-(10**10), max_value=10**11)),
            INT32,
        ),
    )


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


def wire_field(number: int, wire_type: int, payload: bytes) -> bytes:
    """One protobuf field with any number and wire type, as a hostile encoder would write it."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    tag = varint((number << 3) | wire_type)
    if wire_type == 2:
        return tag + varint(len(payload)) + payload
    if wire_type == 0:
        return tag + payload[:10]
    return tag + payload


RAW = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.builds(
            wire_field,
            st.integers(min_value=1, max_value=20),
            st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]),
            st.one_of(
                st.binary(max_size=40), st.sampled_from([b"\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80", b"\x80"])
            ),
        ),
        max_size=6,
    ).map(b"".join),
)
METHODS = [
    "CreateTransaction",
    "GetTransaction",
    "ListTransactions",
    "UpdateTransactionStatus",
    "ListTransactionEvents",
]


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
