"""Status changes, visibility and the audit trail, through the use cases on the in-memory store."""

from __future__ import annotations

from uuid import uuid4

import pytest

from payments_common.errors import Aborted, FailedPrecondition, NotFound, PermissionDenied, Unauthenticated
from payments_common.tokens import Principal
from tests.unit.world import TIMEOUT_MS, World, payment_request, refund_request
from transaction_service import domain
from transaction_service.domain import Status


def test_the_owner_may_cancel_a_pending_payment_in_one_statement_with_one_event() -> None:
    world = World()
    alice = world.user()
    tx = world.create(alice, payment_request())
    calls = world.calls_from_now()
    cancelled = world.set_status(alice, tx, Status.CANCELLED, etag=tx.version)
    assert (cancelled.status, cancelled.version) == (Status.CANCELLED, 2) and world.row(tx) == cancelled
    assert calls == ["statement", "change_status"]
    last = world.store.events_of(tx.id)[-1]
    assert (last.old_status, last.new_status, last.actor, last.reason) == (
        Status.PENDING,
        Status.CANCELLED,
        alice.subject,
        "because",
    )


@pytest.mark.parametrize("target", [Status.COMPLETED, Status.FAILED])
def test_settling_without_the_settle_scope_is_permission_denied_before_any_look_up(target: Status) -> None:
    world = World()
    alice = world.user()
    tx = world.create(alice, payment_request())
    calls = world.calls_from_now()
    for tx_id in (tx.id, uuid4()):
        with pytest.raises(PermissionDenied) as caught:
            world.set_status(alice, tx_id, target)
        assert caught.value.reason == "SETTLE_SCOPE_REQUIRED"
    assert calls == [] and world.row(tx).status == Status.PENDING


@pytest.mark.parametrize("settler", ["settler", "admin"])
def test_a_settler_or_an_admin_may_complete_any_users_payment(settler: str) -> None:
    world = World()
    alice = world.user()
    who: Principal = getattr(world, settler)()
    tx = world.create(alice, payment_request())
    done = world.set_status(who, tx, Status.COMPLETED)
    assert done.status == Status.COMPLETED and world.store.events_of(tx.id)[-1].actor == who.subject
    assert world.payments.get(who, tx.id, TIMEOUT_MS) == done


def test_repeating_the_current_status_with_a_stale_etag_is_ok_and_writes_no_event() -> None:
    world = World()
    alice, settler = world.user(), world.settler()
    tx = world.create(alice, payment_request())
    done = world.set_status(settler, tx, Status.COMPLETED, etag=1)
    assert world.set_status(settler, tx, Status.COMPLETED, etag=1) == done
    assert done.version == 2 and len(world.store.events_of(tx.id)) == 2


def test_a_stale_etag_is_aborted_etag_mismatch_and_changes_nothing() -> None:
    world = World()
    alice = world.user()
    tx = world.create(alice, payment_request())
    with pytest.raises(Aborted) as caught:
        world.set_status(alice, tx, Status.CANCELLED, etag=tx.version + 1)
    assert caught.value.reason == "ETAG_MISMATCH" and world.row(tx) == tx


@pytest.mark.parametrize("etag", [None, 2])
def test_a_final_status_cannot_become_another_one(etag: int | None) -> None:
    world = World()
    alice, settler = world.user(), world.settler()
    tx = world.create(alice, payment_request())
    done = world.set_status(settler, tx, Status.COMPLETED)
    for who, target in ((settler, Status.FAILED), (alice, Status.CANCELLED)):
        with pytest.raises(FailedPrecondition) as caught:
            world.set_status(who, tx, target, etag=etag)
        assert caught.value.reason == "INVALID_STATUS_TRANSITION"
    assert world.row(tx) == done and len(world.store.events_of(tx.id)) == 2


def test_another_users_transaction_is_not_found_exactly_like_a_missing_one() -> None:
    world = World()
    alice, bob = world.user(), world.user()
    tx = world.create(alice, payment_request())
    answers = set()
    for tx_id in (tx.id, uuid4()):
        for action in world.attempts(bob, tx_id):
            with pytest.raises(NotFound) as caught:
                action()
            answers.add((caught.value.message, caught.value.reason, caught.value.metadata == {}))
    assert answers == {(domain.NOT_FOUND_MESSAGE, "NOT_FOUND", True)}
    assert world.row(tx) == tx


@pytest.mark.parametrize(("kind", "reason"), [("user", "USER_DISABLED"), ("settler", "PRINCIPAL_DISABLED")])
def test_a_disabled_caller_is_unauthenticated_rather_than_not_found(kind: str, reason: str) -> None:
    world = World()
    alice = world.user()
    tx = world.create(alice, payment_request())
    caller: Principal = alice if kind == "user" else world.settler()
    world.disable(caller)
    for tx_id in (tx.id, uuid4()):
        for action in world.attempts(caller, tx_id):
            with pytest.raises(Unauthenticated) as caught:
                action()
            assert caught.value.reason == reason
    assert world.row(tx) == tx


@pytest.mark.parametrize(("target", "by"), [(Status.FAILED, "settler"), (Status.CANCELLED, "owner")])
def test_a_refund_that_fails_or_is_cancelled_gives_its_amount_back(target: Status, by: str) -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    refund = world.create(alice, refund_request(payment, 1_000))
    world.set_status(alice if by == "owner" else world.settler(), refund, target)
    assert (world.row(payment).refunded_minor, world.row(payment).version) == (0, 3)
    world.create(alice, refund_request(payment, 1_000))  # the whole amount is refundable again
    assert world.row(payment).refunded_minor == 1_000


def test_a_completed_refund_keeps_counting_against_its_payment() -> None:
    world = World()
    alice = world.user()
    payment = world.completed_payment(alice, 1_000)
    refund = world.create(alice, refund_request(payment, 700))
    world.set_status(world.settler(), refund, Status.COMPLETED)
    assert world.row(payment).refunded_minor == 700
    with pytest.raises(FailedPrecondition) as caught:
        world.create(alice, refund_request(payment, 301))
    assert caught.value.metadata == {"remaining_minor": "300"}


def test_the_events_tell_the_creation_and_each_change_oldest_first() -> None:
    world = World()
    alice, settler = world.user(), world.settler()
    tx = world.create(alice, payment_request())
    world.set_status(settler, tx, Status.COMPLETED)
    world.set_status(settler, tx, Status.COMPLETED)  # a repeat writes no event
    events = world.payments.events(alice, tx.id, TIMEOUT_MS)
    assert [(e.old_status, e.new_status, e.actor) for e in events] == [
        (None, Status.PENDING, alice.subject),
        (Status.PENDING, Status.COMPLETED, settler.subject),
    ]
    assert world.payments.events(settler, tx.id, TIMEOUT_MS) == events
