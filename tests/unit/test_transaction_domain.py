"""The status machine and money rules of transaction_service.domain, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from payments_common.errors import Aborted, AlreadyExists, FailedPrecondition
from transaction_service import domain
from transaction_service.domain import NewTransaction, Status, Transaction, TxType


def request(**changes: object) -> NewTransaction:
    values: dict[str, object] = {
        "type": TxType.PAYMENT,
        "amount_minor": 500,
        "currency": "EUR",
        "description": "d",
        "metadata": {"a": "1", "b": "2"},
        "idempotency_key": "k",
    }
    values.update(changes)
    return NewTransaction(**values)  # type: ignore[arg-type]


def stored(status: Status = Status.PENDING, **changes: object) -> Transaction:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "type": TxType.PAYMENT,
        "status": status,
        "amount_minor": 1000,
        "currency": "EUR",
        "description": "",
        "metadata": {},
        "idempotency_key": "k",
        "refund_of": None,
        "refunded_minor": 0,
        "version": 3,
        "request_fingerprint": request().fingerprint(),
        "created_at": now,
        "updated_at": now,
    }
    values.update(changes)
    return Transaction(**values)  # type: ignore[arg-type]


def test_the_fingerprint_ignores_metadata_order_but_not_content() -> None:
    assert (
        request(metadata={"a": "1", "b": "2"}).fingerprint()
        == request(metadata={"b": "2", "a": "1"}).fingerprint()
    )
    assert request().fingerprint() != request(metadata={"a": "1"}).fingerprint()
    assert request().fingerprint() != request(amount_minor=501).fingerprint()


def test_a_replay_returns_the_original_and_a_changed_request_is_refused() -> None:
    original = stored()
    assert domain.replay(original, request()) is original
    with pytest.raises(AlreadyExists) as caught:
        domain.replay(original, request(currency="USD"))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize("target", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_a_pending_transaction_may_reach_each_final_status(target: Status) -> None:
    assert Status.PENDING.value in domain.sources(target)


def test_processing_follows_only_pending_and_ends_only_in_a_settlement() -> None:
    assert domain.sources(Status.PROCESSING) == [Status.PENDING.value]
    assert domain.TRANSITIONS[Status.PROCESSING] == {Status.COMPLETED, Status.FAILED}
    assert Status.PROCESSING.value not in domain.sources(Status.CANCELLED)


@pytest.mark.parametrize("target", [Status.COMPLETED, Status.FAILED])
def test_a_processed_transaction_cannot_be_settled_by_hand(target: Status) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        domain.unchanged(stored(Status.PROCESSING, processor="sandbox"), target, None)
    assert caught.value.reason == "SETTLED_BY_PROCESSOR"


def test_the_payment_method_joins_the_fingerprint_only_when_given() -> None:
    assert request().fingerprint() == request(payment_method=None).fingerprint()
    assert request(payment_method="pm_card_visa").fingerprint() != request().fingerprint()
    assert "pm_card_visa" not in repr(request(payment_method="pm_card_visa"))


def test_nothing_may_become_pending_again() -> None:
    assert domain.sources(Status.PENDING) == []


@pytest.mark.parametrize("current", list(Status))
def test_repeating_the_current_status_is_a_no_op_even_with_an_old_etag(current: Status) -> None:
    tx = stored(current)
    assert domain.unchanged(tx, current, etag=1) is tx


@pytest.mark.parametrize("current", sorted(domain.FINAL))
@pytest.mark.parametrize("target", list(Status))
def test_a_final_status_never_changes(current: Status, target: Status) -> None:
    if current == target:
        return
    assert current.value not in domain.sources(target)
    with pytest.raises(FailedPrecondition) as caught:
        domain.unchanged(stored(current), target, None)
    assert caught.value.reason == "INVALID_STATUS_TRANSITION"


def test_a_stale_etag_aborts_and_a_current_one_leaves_the_illegal_move_as_the_reason() -> None:
    with pytest.raises(Aborted) as caught:
        domain.unchanged(stored(version=3), Status.COMPLETED, etag=2)
    assert caught.value.reason == "ETAG_MISMATCH"
    with pytest.raises(FailedPrecondition) as refused:
        domain.unchanged(stored(Status.FAILED, version=3), Status.COMPLETED, etag=3)
    assert refused.value.reason == "INVALID_STATUS_TRANSITION"


def test_a_refund_needs_a_completed_payment_in_the_same_currency() -> None:
    for payment in (stored(Status.PENDING), stored(Status.COMPLETED, type=TxType.REFUND)):
        with pytest.raises(FailedPrecondition) as caught:
            domain.check_refund(payment, request(type=TxType.REFUND, amount_minor=1))
        assert caught.value.reason == "REFUND_TARGET_INVALID"
    with pytest.raises(FailedPrecondition) as caught:
        domain.check_refund(stored(Status.COMPLETED), request(type=TxType.REFUND, currency="USD"))
    assert caught.value.reason == "REFUND_TARGET_INVALID"


def test_a_refund_may_use_exactly_what_remains_and_not_one_unit_more() -> None:
    payment = stored(Status.COMPLETED, amount_minor=1000, refunded_minor=600)
    domain.check_refund(payment, request(type=TxType.REFUND, amount_minor=400))
    with pytest.raises(FailedPrecondition) as caught:
        domain.check_refund(payment, request(type=TxType.REFUND, amount_minor=401))
    assert caught.value.reason == "REFUND_EXCEEDS_REMAINING"
    assert caught.value.metadata == {"remaining_minor": "400"}
