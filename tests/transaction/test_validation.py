"""Bad field values are INVALID_ARGUMENT with a google.rpc.BadRequest naming each field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, details_of
from tests.transaction.builders import REFUND, payment_request

CREATE = "/payments.transaction.v1.TransactionService/CreateTransaction"


def refused(call: Callable[[], Any]) -> dict[str, str]:
    """Field violations of a call that must fail with INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.domain == "transaction.payments"
    return details.violations


def test_zero_and_negative_amounts_are_refused(tx_stub: Any, alice: Caller) -> None:
    for amount in (0, -1, -(2**63)):
        request = payment_request(amount_minor=amount)
        assert "amount_minor" in refused(lambda r=request: tx_stub.CreateTransaction(r, metadata=alice.md))


def test_an_amount_beyond_int64_cannot_be_encoded_and_arrives_negative_if_forced(
    tx_address: str, alice: Caller
) -> None:
    with pytest.raises(ValueError):
        pb.CreateTransactionRequest(amount_minor=2**63)
    # Hand-encode field 2 as the varint 2**63: an int64 decoder sees a negative number.
    raw = (
        payment_request(amount_minor=1).SerializeToString().replace(b"\x10\x01", b"\x10" + _varint(2**63), 1)
    )
    with grpc.insecure_channel(tx_address) as channel:
        call = channel.unary_unary(CREATE, request_serializer=None, response_deserializer=None)
        assert "amount_minor" in refused(lambda: call(raw, metadata=alice.md))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@pytest.mark.parametrize("currency", ["XYZ", "eur", "Eur", "", "EURO"])
def test_unknown_or_lower_case_currencies_are_refused(tx_stub: Any, alice: Caller, currency: str) -> None:
    violations = refused(
        lambda: tx_stub.CreateTransaction(payment_request(currency=currency), metadata=alice.md)
    )
    assert "currency" in violations


def test_yen_with_minor_units_beyond_its_exponent_is_refused_where_dollars_are_fine(
    tx_stub: Any, alice: Caller
) -> None:
    # JPY has exponent 0: an amount sized as if yen had cents (x100) exceeds the JPY maximum.
    amount = 10**12 * 100
    violations = refused(
        lambda: tx_stub.CreateTransaction(
            payment_request(currency="JPY", amount_minor=amount), metadata=alice.md
        )
    )
    assert "exponent 0" in violations["amount_minor"]
    ok = tx_stub.CreateTransaction(payment_request(currency="USD", amount_minor=amount), metadata=alice.md)
    assert ok.transaction.amount_minor == amount


def test_oversized_description_and_metadata_are_refused(tx_stub: Any, alice: Caller) -> None:
    cases = [
        {"description": "x" * 501},
        {"metadata": {f"k{i}": "v" for i in range(51)}},
        {"metadata": {"k" * 41: "v"}},
        {"metadata": {"k": "v" * 501}},
    ]
    for fields in cases:
        request = payment_request(**fields)
        violations = refused(lambda r=request: tx_stub.CreateTransaction(r, metadata=alice.md))
        assert set(violations) == set(fields)


def test_a_missing_idempotency_key_is_refused(tx_stub: Any, alice: Caller) -> None:
    violations = refused(
        lambda: tx_stub.CreateTransaction(payment_request(idempotency_key=""), metadata=alice.md)
    )
    assert violations == {"idempotency_key": "is required"}


def test_all_bad_fields_come_back_in_one_error(tx_stub: Any, alice: Caller) -> None:
    request = pb.CreateTransactionRequest(amount_minor=0, currency="usd", description="x" * 600)
    violations = refused(lambda: tx_stub.CreateTransaction(request, metadata=alice.md))
    assert set(violations) == {"type", "amount_minor", "currency", "description", "idempotency_key"}


def test_a_refund_must_name_a_valid_payment_id(tx_stub: Any, alice: Caller) -> None:
    for refund_of in ("", "not-a-uuid"):
        request = payment_request(type=REFUND, refund_of=refund_of)
        assert "refund_of" in refused(lambda r=request: tx_stub.CreateTransaction(r, metadata=alice.md))


def test_malformed_ids_and_negative_page_sizes_are_refused(tx_stub: Any, alice: Caller) -> None:
    assert "id" in refused(
        lambda: tx_stub.GetTransaction(pb.GetTransactionRequest(id="42"), metadata=alice.md)
    )
    assert "page_size" in refused(
        lambda: tx_stub.ListTransactions(pb.ListTransactionsRequest(page_size=-1), metadata=alice.md)
    )
    assert "status" in refused(
        lambda: tx_stub.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id="123e4567-e89b-12d3-a456-426614174000"), metadata=alice.md
        )
    )


def test_calls_without_a_valid_token_are_unauthenticated(tx_stub: Any) -> None:
    for md in ((), (("authorization", "Bearer not-a-jwt"),)):
        with pytest.raises(grpc.RpcError) as caught:
            tx_stub.ListTransactions(pb.ListTransactionsRequest(), metadata=md)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
