"""An insert that created nothing because a concurrent request got there first: what the caller gets."""

from __future__ import annotations

import pytest

from payments_common.errors import Aborted, AlreadyExists, Unauthenticated
from tests.unit.world import World, owner_of, payment_request, refund_request


def test_a_create_that_loses_to_the_same_request_returns_the_winners_row() -> None:
    world = World()
    alice = world.user()
    request = payment_request(key="order-7")
    world.store.race_next_insert(winner=(owner_of(alice), request))
    calls = world.calls_from_now()
    tx = world.create(alice, request)
    assert calls[:2] == ["statement", "insert"] and "by_key" in calls[2:]
    assert list(world.store.rows) == [tx.id] and tx.idempotency_key == "order-7"


def test_a_create_that_loses_to_another_request_with_its_key_is_key_reused() -> None:
    world = World()
    alice = world.user()
    world.store.race_next_insert(winner=(owner_of(alice), payment_request(500, key="order-7")))
    with pytest.raises(AlreadyExists) as caught:
        world.create(alice, payment_request(700, key="order-7"))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [t.amount_minor for t in world.store.rows.values()] == [500]


def test_a_create_whose_competitor_left_no_row_is_aborted_for_a_retry() -> None:
    world = World()
    alice = world.user()
    world.store.race_next_insert()
    calls = world.calls_from_now()
    with pytest.raises(Aborted) as caught:
        world.create(alice, payment_request())
    assert caught.value.reason == "CONCURRENT_REQUEST"
    assert calls[:2] == ["statement", "insert"] and not world.store.rows


def test_a_user_disabled_while_creating_gets_user_disabled() -> None:
    world = World()
    alice = world.user()
    world.store.on_next_insert(lambda: world.disable(alice))
    with pytest.raises(Unauthenticated) as caught:
        world.create(alice, payment_request())
    assert caught.value.reason == "USER_DISABLED" and not world.store.rows


def test_a_refund_that_loses_to_its_own_retry_returns_the_original_and_counts_once() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    request = refund_request(payment, 400)
    world.store.race_next_insert(winner=(owner_of(alice), request))
    calls = world.calls_from_now()
    refund = world.create(alice, request)
    assert refund.refund_of == payment.id and refund.amount_minor == 400
    assert calls[:4] == ["transaction", "lock_payment", "by_key", "insert"] and calls[-1] == "commit"
    assert "add_refunded" not in calls  # the winner's own scope counts it, once
    assert world.row(payment).refunded_minor == 0


def test_a_refund_whose_competitor_left_no_row_is_aborted_and_rolled_back() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    world.store.race_next_insert()
    calls = world.calls_from_now()
    with pytest.raises(Aborted) as caught:
        world.create(alice, refund_request(payment, 400))
    assert caught.value.reason == "CONCURRENT_REQUEST"
    assert calls[-1] == "rollback" and "add_refunded" not in calls
    assert list(world.store.rows) == [payment.id] and world.row(payment).refunded_minor == 0


def test_a_user_disabled_while_asking_for_a_refund_gets_user_disabled_and_nothing_is_counted() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    world.store.on_next_insert(lambda: world.disable(alice))
    with pytest.raises(Unauthenticated) as caught:
        world.create(alice, refund_request(payment, 400))
    assert caught.value.reason == "USER_DISABLED" and world.row(payment) == payment


def test_a_failed_transaction_scope_undoes_its_writes_but_not_a_competitors() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    other = payment_request(key="theirs")
    with pytest.raises(RuntimeError), world.store.transaction(1_000) as repo:
        mine = repo.insert(owner_of(alice), payment_request(key="mine"), alice.subject)
        world.store.seed(owner_of(alice), other)  # another session, committed meanwhile
        assert mine is not None and repo.by_key(owner_of(alice), "mine") == mine
        raise RuntimeError("the use case failed after its insert")
    keys = sorted(t.idempotency_key for t in world.store.rows.values() if t.id != payment.id)
    assert keys == ["theirs"] and len(world.store.events) == 2  # the payment's and theirs
