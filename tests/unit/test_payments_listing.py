"""Listing through the use case: keyset pages newest first, tokens bound to caller and filter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payments_common.errors import InvalidArgument, Unauthenticated
from payments_common.tokens import Principal
from tests.unit.memory import InMemoryStore
from tests.unit.world import TIMEOUT_MS, World, owner_of, payment_request
from transaction_service.domain import Status, Transaction, TxType
from transaction_service.pagination import ListFilter


def mine(principal: Principal, **filters: object) -> ListFilter:
    return ListFilter(owner_of(principal), **filters)  # type: ignore[arg-type]


def every_page(world: World, principal: Principal, listing: ListFilter, size: int) -> list[list[Transaction]]:
    pages, token = [], ""
    while True:
        rows, token = world.payments.list(principal, listing, token, size, TIMEOUT_MS)
        pages.append(rows)
        if not token:
            return pages


@pytest.mark.parametrize(("count", "sizes"), [(5, [2, 2, 1]), (4, [2, 2]), (1, [1]), (0, [0])])
def test_pages_run_newest_first_and_the_last_has_no_token(count: int, sizes: list[int]) -> None:
    world = World()
    alice = world.user()
    created = [world.create(alice, payment_request()) for _ in range(count)]
    pages = every_page(world, alice, mine(alice), 2)
    assert [len(page) for page in pages] == sizes
    assert [tx.id for page in pages for tx in page] == [tx.id for tx in reversed(created)]


def test_rows_created_at_the_same_instant_page_by_id_without_loss_or_repeat() -> None:
    world = World(InMemoryStore(tick=timedelta(0)))
    alice = world.user()
    created = {world.create(alice, payment_request()).id for _ in range(7)}
    served = [tx.id for page in every_page(world, alice, mine(alice), 3) for tx in page]
    assert len(served) == 7 and set(served) == created and served == sorted(served, reverse=True)


def test_a_page_token_is_refused_for_another_caller_or_another_filter() -> None:
    world = World()
    alice, admin = world.user(), world.admin()
    for _ in range(3):
        world.create(alice, payment_request())
    _, token = world.payments.list(alice, mine(alice), "", 2, TIMEOUT_MS)
    assert token
    for caller, listing in ((admin, mine(alice)), (alice, mine(alice, status=Status.PENDING))):
        with pytest.raises(InvalidArgument) as caught:
            world.payments.list(caller, listing, token, 2, TIMEOUT_MS)
        assert [field for field, _ in caught.value.violations] == ["page_token"]


def test_the_filters_select_status_type_currency_and_the_created_range() -> None:
    world = World()
    alice, settler = world.user(), world.settler()
    eur = world.create(alice, payment_request(currency="EUR"))
    usd = world.create(alice, payment_request(currency="USD"))
    done = world.set_status(settler, world.create(alice, payment_request()), Status.COMPLETED)
    cases = {
        "currency": (mine(alice, currency="USD"), [usd]),
        "status": (mine(alice, status=Status.COMPLETED), [done]),
        "type": (mine(alice, type=TxType.REFUND), []),
        "range": (mine(alice, created_from=eur.created_at, created_to=done.created_at), [usd, eur]),
    }
    for name, (listing, expected) in cases.items():
        rows, token = world.payments.list(alice, listing, "", 10, TIMEOUT_MS)
        assert (name, [tx.id for tx in rows], token) == (name, [tx.id for tx in expected], "")


def test_a_listing_shows_its_owner_only_and_an_admin_may_ask_for_another_user() -> None:
    world = World()
    alice, bob, admin = world.user(), world.user(), world.admin()
    theirs = world.create(alice, payment_request())
    world.create(bob, payment_request())
    rows, _ = world.payments.list(admin, mine(alice), "", 10, TIMEOUT_MS)
    assert [tx.id for tx in rows] == [theirs.id]
    assert world.payments.list(admin, mine(admin), "", 10, TIMEOUT_MS) == ([], "")


def test_a_disabled_user_listing_is_user_disabled_and_an_empty_history_is_an_empty_page() -> None:
    world = World()
    alice, bob = world.user(), world.user()
    assert world.payments.list(bob, mine(bob), "", 10, TIMEOUT_MS) == ([], "")
    world.create(alice, payment_request())
    world.disable(alice)
    with pytest.raises(Unauthenticated) as caught:
        world.payments.list(alice, mine(alice), "", 10, TIMEOUT_MS)
    assert caught.value.reason == "USER_DISABLED"
