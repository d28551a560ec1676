"""Who sees what: users their own changes, the watch scope and admins anyone's; endings by identity."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from tests.forge import claims_of, current_signing_key, sign
from tests.helpers import Caller
from tests.stream.watching import Watcher, payment

UNAUTHENTICATED, PERMISSION_DENIED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED


def test_a_user_sees_only_their_own_changes(stream_stub: Any, new_user: Callable[..., Caller]) -> None:
    alice, bob = new_user(), new_user()
    alices, bobs = Watcher(stream_stub, alice.md).live(), Watcher(stream_stub, bob.md).live()
    theirs = [payment(stream_stub, bob).id, payment(stream_stub, bob).id]
    mine = payment(stream_stub, alice).id
    own = Watcher(stream_stub, alice.md, user_id=alice.id).live()  # naming oneself is allowed
    also_mine = payment(stream_stub, alice).id
    assert [c.transaction.id for c in alices.wait_for(2)] == [mine, also_mine]
    assert [c.transaction.id for c in bobs.wait_for(2)] == theirs
    assert [c.transaction.id for c in own.wait_for(1)] == [also_mine]
    time.sleep(0.3)  # nothing of the other arrives later either
    for watcher in (alices, bobs, own):
        watcher.stop()
    assert {c.transaction.user_id for c in alices.changes} == {alice.id}
    assert {c.transaction.user_id for c in bobs.changes} == {bob.id}


def test_a_user_naming_another_user_is_permission_denied(
    stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    alice, bob = new_user(), new_user()
    ending = Watcher(stream_stub, alice.md, user_id=bob.id).ending
    assert (ending.code, ending.reason) == (PERMISSION_DENIED, "WATCH_SCOPE_REQUIRED")


@pytest.mark.parametrize("scopes", [[], ["transactions:settle"], ["transactions:read", "admin"]])
def test_a_service_principal_without_the_watch_scope_is_permission_denied_for_every_user(
    stream_stub: Any,
    new_user: Callable[..., Caller],
    make_service_principal: Callable[[list[str]], Caller],
    scopes: list[str],
) -> None:
    service, alice = make_service_principal(scopes), new_user()
    for user_id in ("", alice.id, service.id):
        ending = Watcher(stream_stub, service.md, user_id=user_id).ending
        assert (ending.code, ending.reason) == (PERMISSION_DENIED, "WATCH_SCOPE_REQUIRED"), user_id


def test_the_watch_scope_and_admins_see_every_user_or_the_one_they_name(
    stream_stub: Any, new_user: Callable[..., Caller], watch_principal: Caller, admin_user: Caller
) -> None:
    alice, bob = new_user(), new_user()
    everyone = Watcher(stream_stub, watch_principal.md).live()
    by_admin = Watcher(stream_stub, admin_user.md).live()
    only_bob = Watcher(stream_stub, watch_principal.md, user_id=bob.id).live()
    made = [payment(stream_stub, alice).id, payment(stream_stub, bob).id, payment(stream_stub, alice).id]

    def mine(watcher: Watcher, count: int) -> list[str]:  # the service sees other tests' users too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = [c.transaction.id for c in watcher.changes if c.transaction.user_id in (alice.id, bob.id)]
            if len(seen) >= count:
                return seen
            time.sleep(0.02)
        raise AssertionError(f"only {watcher.changes!r}")

    assert mine(everyone, 3) == made
    assert mine(by_admin, 3) == made
    assert mine(only_bob, 1) == [made[1]]
    time.sleep(0.3)
    for watcher in (everyone, by_admin, only_bob):
        watcher.stop()
    assert {c.transaction.user_id for c in only_bob.changes} == {bob.id}


def test_a_disabled_account_ends_its_stream_unauthenticated(
    stream_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    alice = new_user()
    watcher = Watcher(stream_stub, alice.md).live()
    payment(stream_stub, alice)
    watcher.wait_for(1)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE auth.users SET disabled = true WHERE id = :id"), {"id": alice.id})
    started = time.monotonic()
    ending = watcher.ending
    assert (ending.code, ending.reason) == (UNAUTHENTICATED, "USER_DISABLED")
    assert time.monotonic() - started < 3  # the reader re-checks accounts every 0.3 s here
    assert ending.metadata["resume_token"]  # where it stopped, to resume once enabled again
    assert Watcher(stream_stub, alice.md).ending.reason == "USER_DISABLED"  # and it cannot start again


def test_a_stream_ends_unauthenticated_when_its_access_token_expires(
    stream_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    alice = new_user()
    kid, key, _jwk = current_signing_key(db_engine)
    short = sign(claims_of(alice.id, exp=int(time.time()) + 2), key, kid)
    watcher = Watcher(stream_stub, (("authorization", f"Bearer {short}"),)).live()
    made = payment(stream_stub, alice)
    assert watcher.wait_for(1)[0].transaction.id == made.id  # it works until then
    ending = watcher.ending
    assert (ending.code, ending.reason) == (UNAUTHENTICATED, "TOKEN_EXPIRED")
    # resuming with a fresh token from where it stopped misses nothing
    later = payment(stream_stub, alice)
    resumed = Watcher(stream_stub, alice.md, resume_token=ending.metadata["resume_token"]).live()
    assert [c.transaction.id for c in resumed.wait_for(1)] == [later.id]
    resumed.stop()
