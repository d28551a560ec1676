"""The reader and the watches on an in-memory outbox: fan-out, hand-over, lag, endings. No PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from payments_common.errors import FailedPrecondition, InvalidArgument
from tests.stream.world import KEY, Stream, run, until
from transaction_service import subscription
from transaction_service.changes import Change, Checkpoint
from transaction_service.repository import Account
from transaction_service.resume import ResumeTokens
from transaction_service.watch import CATCH_UP_SCAN


def test_one_read_serves_a_hundred_watchers() -> None:
    async def scenario(s: Stream) -> tuple[int, list[list[Change]]]:
        alice = s.user()
        lives = [asyncio.Event() for _ in range(100)]
        tasks = [asyncio.create_task(s.collect(alice, 5, live=live)) for live in lives]
        await until(lambda: all(live.is_set() for live in lives))
        await asyncio.sleep(0.05)  # the wake-ups of the subscriptions are spent
        reads = s.feed.reads
        made = [s.feed.change(UUID(alice.subject)) for _ in range(5)]
        s.hub.notify()
        got = await asyncio.gather(*tasks)
        assert all(changes == made for changes in got)
        return s.feed.reads - reads, got

    reads, _ = run(scenario)
    assert reads == 1


def test_a_watcher_far_behind_catches_up_by_itself_then_follows_without_gap_or_repeat() -> None:
    async def scenario(s: Stream) -> None:
        alice, bob = s.user(), s.user()
        history = []
        for _ in range(CATCH_UP_SCAN + 500):  # more than one catch-up round trip, with others' changes
            history.append(s.feed.change(UUID(alice.subject)))
            s.feed.change(UUID(bob.subject))
        live = asyncio.Event()
        ahead = asyncio.create_task(s.collect(alice, 3, live=live))  # keeps the reader at the head
        await live.wait()
        later = [s.feed.change(UUID(alice.subject)) for _ in range(3)]
        s.hub.notify()
        assert await ahead == later
        catch_ups = s.feed.catch_ups
        behind = asyncio.create_task(
            s.collect(alice, len(history) - 10 + 3 + 2, s.token_after(alice, history[9]))
        )
        await until(lambda: s.feed.catch_ups > catch_ups + 1)  # it reads back on its own
        more = [s.feed.change(UUID(alice.subject)) for _ in range(2)]
        s.hub.notify()
        assert await behind == history[10:] + later + more

    run(scenario)


def test_a_slow_watcher_falls_back_to_catching_up_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscription, "MAX_BUFFERED", 5)

    async def scenario(s: Stream) -> None:
        alice = s.user()
        live = asyncio.Event()
        slow = asyncio.create_task(s.collect(alice, 60, pace=0.005, live=live))
        await live.wait()
        made = []
        for _ in range(6):
            made += [s.feed.change(UUID(alice.subject)) for _ in range(10)]
            s.hub.notify()
            await asyncio.sleep(0.01)
        assert await slow == made
        assert s.feed.catch_ups > 0  # it lagged and caught up by itself

    run(scenario)


def test_changes_behind_a_running_transaction_wait_for_it_and_follow_soon_after_it_ends() -> None:
    async def scenario(s: Stream) -> None:
        alice = s.user()
        live = asyncio.Event()
        watch = asyncio.create_task(s.collect(alice, 2, live=live))
        await live.wait()
        early = s.feed.begin()
        first = s.feed.write(early, UUID(alice.subject))
        second = s.feed.change(UUID(alice.subject))  # later started, committed first
        s.hub.notify()
        await asyncio.sleep(0.2)
        assert not watch.done()
        s.feed.commit(early)  # no NOTIFY: the reader knew changes were waiting and looks again soon
        assert await asyncio.wait_for(watch, 1.0) == [first, second]

    run(scenario)


def test_a_disabled_account_a_lost_database_and_an_expired_token_end_the_watch() -> None:
    async def scenario(s: Stream) -> list[tuple[str, str, bool]]:
        endings = []
        for cause in ("account", "database", "token"):
            principal = s.user(expires_in=0.3 if cause == "token" else 60)
            live = asyncio.Event()
            ending = asyncio.create_task(s.ending(principal, live))
            await live.wait()
            if cause == "account":
                s.feed.inactive_accounts.add(Account("user", UUID(principal.subject)))
            elif cause == "database":
                s.feed.down = True
                s.hub.notify()
            error = await ending
            s.feed.down = False
            endings.append((error.code.name, error.reason, bool(error.metadata.get("resume_token"))))
        assert s.watches.open == 0
        return endings

    assert run(scenario, check=0.05) == [
        ("UNAUTHENTICATED", "USER_DISABLED", True),
        ("UNAVAILABLE", "DATABASE_UNAVAILABLE", True),
        ("UNAUTHENTICATED", "TOKEN_EXPIRED", True),
    ]


def test_beyond_the_limit_a_watch_is_refused_and_draining_ends_every_watch() -> None:
    async def scenario(s: Stream) -> list[str]:
        alice = s.user()
        lives = [asyncio.Event(), asyncio.Event()]
        endings = [asyncio.create_task(s.ending(alice, live)) for live in lives]
        for live in lives:
            await live.wait()
        refused = await s.ending(alice, asyncio.Event())
        s.watches.drain()
        after = await s.ending(alice, asyncio.Event())
        return [refused.reason, *[(await e).reason for e in endings], after.reason]

    assert run(scenario, limit=2) == [
        "TOO_MANY_WATCHERS",
        "SERVER_DRAINING",
        "SERVER_DRAINING",
        "SERVER_DRAINING",
    ]


def test_a_resume_token_is_bound_to_its_caller_and_filter_and_expires() -> None:
    now = [time.time()]
    tokens = ResumeTokens(KEY, 60, clock=lambda: now[0])
    alice, bob = uuid4(), uuid4()
    point = Checkpoint(Stream().feed.horizon(), datetime.fromtimestamp(now[0], UTC))
    token = tokens.issue(tokens.bind(str(alice), alice), point)
    assert tokens.read(tokens.bind(str(alice), alice), token) == point
    for caller, owner in [(str(bob), alice), (str(alice), None), (str(alice), bob)]:
        with pytest.raises(InvalidArgument):
            tokens.read(tokens.bind(caller, owner), token)
    with pytest.raises(InvalidArgument):
        ResumeTokens(b"other key" * 4, 60).read(
            ResumeTokens(b"other key" * 4, 60).bind(str(alice), alice), token
        )
    now[0] += 61
    with pytest.raises(FailedPrecondition) as expired:
        tokens.read(tokens.bind(str(alice), alice), token)
    assert expired.value.reason == "RESUME_TOKEN_EXPIRED"


def test_a_read_that_began_beyond_a_new_subscription_makes_it_catch_up_rather_than_leave_a_gap() -> None:
    async def scenario(s: Stream) -> None:
        feed, alice = s.feed, s.user()
        account = Account("user", UUID(alice.subject))
        older = Checkpoint(feed.horizon(), datetime.now(UTC))
        feed.change(UUID(alice.subject))
        newer = Checkpoint(feed.horizon(), datetime.now(UTC))
        joined = subscription.Subscription(account, None, older)  # subscribed from an older horizon
        joined.offer([], newer, Checkpoint(feed.horizon(), datetime.now(UTC)))  # a read that began later
        with pytest.raises(subscription.Lagging):
            await joined.take()
        assert joined.frontier.position >= newer.position  # it subscribes again beyond the gap

    run(scenario)
