"""Creating payments and refunds: idempotency, the refund's lock order and its money checks."""

from __future__ import annotations

from uuid import uuid4

import pytest

from payments_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from tests.unit.world import TIMEOUT_MS, World, owner_of, payment_request, refund_request
from transaction_service import domain
from transaction_service.domain import Status, TxType


def test_a_payment_is_created_pending_in_one_statement_with_its_creation_event() -> None:
    world = World()
    alice = world.user()
    calls = world.calls_from_now()
    tx = world.create(alice, payment_request(1_250))
    assert (tx.status, tx.type, tx.amount_minor, tx.version, tx.user_id) == (
        Status.PENDING,
        TxType.PAYMENT,
        1_250,
        1,
        owner_of(alice),
    )
    assert calls == ["statement", "insert"] and world.store.timeouts == [TIMEOUT_MS]
    [event] = world.store.events_of(tx.id)
    assert (event.old_status, event.new_status, event.actor) == (None, Status.PENDING, alice.subject)


def test_a_retry_with_the_same_key_and_request_returns_the_original_and_adds_no_row() -> None:
    world = World()
    alice = world.user()
    request = payment_request(key="order-1")
    original = world.create(alice, request)
    assert world.create(alice, request) == original
    assert len(world.store.rows) == 1 and len(world.store.events) == 1


def test_the_same_key_with_another_request_is_already_exists_key_reused() -> None:
    world = World()
    alice = world.user()
    world.create(alice, payment_request(100, key="order-1"))
    with pytest.raises(AlreadyExists) as caught:
        world.create(alice, payment_request(101, key="order-1"))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [t.amount_minor for t in world.store.rows.values()] == [100]


def test_an_idempotency_key_is_scoped_to_its_user() -> None:
    world = World()
    alice, bob = world.user(), world.user()
    first = world.create(alice, payment_request(key="shared"))
    second = world.create(bob, payment_request(key="shared"))
    assert first.id != second.id and second.user_id == owner_of(bob)


def test_a_service_principal_cannot_create_transactions_and_nothing_is_looked_up() -> None:
    world = World()
    settler = world.settler()
    calls = world.calls_from_now()
    with pytest.raises(PermissionDenied) as caught:
        world.create(settler, payment_request())
    assert caught.value.reason == "USER_ACCOUNT_REQUIRED" and calls == []


def test_a_disabled_user_cannot_create_a_payment() -> None:
    world = World()
    alice = world.user()
    world.disable(alice)
    with pytest.raises(Unauthenticated) as caught:
        world.create(alice, payment_request())
    assert caught.value.reason == "USER_DISABLED" and not world.store.rows


def test_a_disabled_user_retrying_a_create_gets_user_disabled_not_the_original() -> None:
    world = World()
    alice = world.user()
    request = payment_request()
    world.create(alice, request)
    world.disable(alice)
    with pytest.raises(Unauthenticated) as caught:
        world.create(alice, request)
    assert caught.value.reason == "USER_DISABLED"


def test_a_refund_locks_its_payment_before_looking_up_the_key_and_before_inserting() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    calls = world.calls_from_now()
    refund = world.create(alice, refund_request(payment, 300))
    assert calls == ["transaction", "lock_payment", "by_key", "insert", "add_refunded", "commit"]
    assert (refund.type, refund.status, refund.refund_of) == (TxType.REFUND, Status.PENDING, payment.id)
    assert (world.row(payment).refunded_minor, world.row(payment).version) == (300, 2)


def test_a_refund_may_take_exactly_what_remains_and_not_one_unit_more() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    world.create(alice, refund_request(payment, 600))
    world.create(alice, refund_request(payment, 400))
    rows_before = dict(world.store.rows)
    calls = world.calls_from_now()
    with pytest.raises(FailedPrecondition) as caught:
        world.create(alice, refund_request(payment, 1))
    assert caught.value.reason == "REFUND_EXCEEDS_REMAINING"
    assert caught.value.metadata == {"remaining_minor": "0"}
    assert world.store.rows == rows_before and "insert" not in calls and calls[-1] == "rollback"


def test_a_refund_exceeding_the_payment_writes_nothing() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    with pytest.raises(FailedPrecondition) as caught:
        world.create(alice, refund_request(payment, 1_001))
    assert caught.value.reason == "REFUND_EXCEEDS_REMAINING"
    assert list(world.store.rows) == [payment.id] and world.row(payment) == payment


@pytest.mark.parametrize("status", [Status.PENDING, Status.FAILED, Status.CANCELLED])
def test_only_a_completed_payment_can_be_refunded(status: Status) -> None:
    world = World()
    alice = world.user()
    payment = world.store.seed(owner_of(alice), payment_request(1_000), status=status)
    with pytest.raises(FailedPrecondition) as caught:
        world.create(alice, refund_request(payment, 10))
    assert caught.value.reason == "REFUND_TARGET_INVALID" and len(world.store.rows) == 1


def test_a_refund_of_a_refund_or_in_another_currency_is_refused() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    refund = world.create(alice, refund_request(payment, 10))
    world.set_status(world.admin(), refund, Status.COMPLETED)
    for bad in (refund_request(refund.id, 1), refund_request(payment, 1, currency="USD")):
        with pytest.raises(FailedPrecondition) as caught:
            world.create(alice, bad)
        assert caught.value.reason == "REFUND_TARGET_INVALID"
    assert world.row(payment).refunded_minor == 10


def test_a_refund_of_another_users_payment_is_not_found_like_a_missing_one() -> None:
    world = World()
    alice, bob = world.user(), world.user()
    payment = world.completed_payment(alice)
    answers = []
    for payment_id in (payment.id, uuid4()):
        with pytest.raises(NotFound) as caught:
            world.create(bob, refund_request(payment_id, 1))
        answers.append((caught.value.message, caught.value.reason))
    assert answers == [(domain.NOT_FOUND_MESSAGE, "NOT_FOUND")] * 2
    assert world.row(payment).refunded_minor == 0


def test_a_disabled_user_asking_for_a_refund_is_user_disabled_before_any_key_look_up() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice)
    world.disable(alice)
    calls = world.calls_from_now()
    with pytest.raises(Unauthenticated) as caught:
        world.create(alice, refund_request(payment, 1))
    assert caught.value.reason == "USER_DISABLED"
    assert calls == ["transaction", "lock_payment", "caller_active", "rollback"]


def test_a_retried_refund_returns_the_original_even_when_nothing_remains() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    request = refund_request(payment, 1_000)
    original = world.create(alice, request)
    calls = world.calls_from_now()
    assert world.create(alice, request) == original
    assert calls == ["transaction", "lock_payment", "by_key", "commit"]
    assert world.row(payment).refunded_minor == 1_000


def test_a_refund_key_reused_for_another_amount_is_already_exists() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    world.create(alice, refund_request(payment, 100, key="r-1"))
    with pytest.raises(AlreadyExists) as caught:
        world.create(alice, refund_request(payment, 200, key="r-1"))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED" and world.row(payment).refunded_minor == 100
