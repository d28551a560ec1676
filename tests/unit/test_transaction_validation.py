"""Create/update/list request validation: every bad field is reported, in one error."""

from __future__ import annotations

import pytest

from payments_common.errors import InvalidArgument
from transaction_service import currencies, validation
from transaction_service.domain import Status, TxType


def create(**changes: object) -> object:
    values: dict[str, object] = {
        "tx_type": TxType.PAYMENT,
        "amount_minor": 100,
        "currency": "EUR",
        "description": "",
        "metadata": {},
        "idempotency_key": "k-1",
        "refund_of": "",
    }
    values.update(changes)
    return validation.new_transaction(**values)  # type: ignore[arg-type]


def violations(**changes: object) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        create(**changes)
    return dict(caught.value.violations)


def test_every_bad_field_is_reported_at_once() -> None:
    found = violations(
        tx_type=None, amount_minor=0, currency="eur", description="x" * 501, idempotency_key="", refund_of="x"
    )
    assert set(found) == {"type", "amount_minor", "currency", "description", "idempotency_key"}


@pytest.mark.parametrize("amount", [0, -1, -(2**63)])
def test_amounts_must_be_positive(amount: int) -> None:
    assert "amount_minor" in violations(amount_minor=amount)


def test_the_exponent_bounds_the_amount_so_yen_sized_like_cents_is_refused() -> None:
    too_many_yen = currencies.max_amount_minor("JPY") + 1
    assert currencies.exponent("JPY") == 0 and currencies.exponent("USD") == 2
    assert "exponent 0" in violations(currency="JPY", amount_minor=too_many_yen)["amount_minor"]
    create(currency="USD", amount_minor=too_many_yen)


def test_every_currency_maximum_fits_in_int64() -> None:
    assert max(currencies.max_amount_minor(code) for code in currencies.EXPONENTS) < 2**63


@pytest.mark.parametrize("currency", ["", "eur", "Eur", "XYZ", "EURO", "XAU"])
def test_unknown_or_lower_case_currencies_are_refused(currency: str) -> None:
    assert "currency" in violations(currency=currency)


def test_metadata_is_bounded_in_keys_key_length_and_value_length() -> None:
    assert "metadata" in violations(metadata={f"k{i}": "v" for i in range(51)})
    assert "metadata" in violations(metadata={"k" * 41: "v"})
    assert "metadata" in violations(metadata={"": "v"})
    assert "metadata" in violations(metadata={"k": "v" * 501})
    create(metadata={f"{i:040d}": "v" * 500 for i in range(50)})


@pytest.mark.parametrize("key", ["", "k" * 129, "tab\there", "é"])
def test_the_idempotency_key_is_1_to_128_printable_ascii_characters(key: str) -> None:
    assert "idempotency_key" in violations(idempotency_key=key)


def test_nul_characters_are_refused_because_postgres_text_cannot_hold_them() -> None:
    assert "description" in violations(description="a\x00b")


def test_a_refund_needs_a_uuid_target_and_a_payment_must_not_name_one() -> None:
    assert "refund_of" in violations(tx_type=TxType.REFUND)
    assert "refund_of" in violations(tx_type=TxType.REFUND, refund_of="not-a-uuid")
    assert "refund_of" in violations(refund_of="123e4567-e89b-12d3-a456-426614174000")
    refund = create(tx_type=TxType.REFUND, refund_of="123E4567-E89B-12D3-A456-426614174000")
    assert str(refund.refund_of) == "123e4567-e89b-12d3-a456-426614174000"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value", ["", "123", "{123e4567-e89b-12d3-a456-426614174000}", "123e4567e89b12d3a456426614174000"]
)
def test_ids_must_be_canonical_uuids(value: str) -> None:
    with pytest.raises(InvalidArgument):
        validation.require_uuid("id", value)


def test_an_update_needs_a_target_and_a_well_formed_etag() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.update_request("nope", None, "W/x", "r" * 501)
    assert {field for field, _ in caught.value.violations} == {"id", "status", "etag", "reason"}
    _, target, etag = validation.update_request(
        "123e4567-e89b-12d3-a456-426614174000", Status.FAILED, "4", ""
    )
    assert (target, etag) == (Status.FAILED, 4)


@pytest.mark.parametrize(("requested", "served"), [(0, 50), (1, 1), (500, 500), (501, 500), (2**31 - 1, 500)])
def test_page_sizes_default_and_cap(requested: int, served: int) -> None:
    found: list[tuple[str, str]] = []
    assert validation.page_size(found, requested) == served
    assert not found


def test_a_negative_page_size_is_refused() -> None:
    found: list[tuple[str, str]] = []
    validation.page_size(found, -1)
    assert found[0][0] == "page_size"
