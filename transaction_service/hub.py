"""One reader per process: it reads the outbox once per wake-up and fans the changes out.

Every watcher of the process subscribes here; the reader wakes on a NOTIFY (the hint), on its
poll interval (the fallback), or soon again while committed changes wait behind a running
transaction, and then runs ONE read for all watchers (`ChangeFeed.read`), on a thread and a
connection of its own, so watchers never take the unary calls' threads or pooled connections.
Each subscription keeps the changes its watcher may see until the watcher takes them; one that
falls too far behind is dropped to catching up by itself (`Lagging`), so a slow watcher costs
memory only up to a bound and never slows the others. The reader also re-checks, every
`account_check_seconds`, that the watchers' accounts are still active, in one scope.

Everything here runs on the server's event loop, except the reads (on `offload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from prometheus_client import Counter, Histogram

from payments_common.errors import DomainError, Unavailable
from payments_common.server import Offload
from transaction_service.changes import Checkpoint, Read
from transaction_service.feed import ChangeFeed
from transaction_service.listener import Connect, Listener
from transaction_service.repository import Account
from transaction_service.subscription import AccountInactive, Subscription

log = logging.getLogger("payments.watch")
READS = Counter("transaction_watch_reads_total", "Reads of the outbox by this process's change reader")
LAG = Histogram(
    "transaction_watch_read_lag_seconds",
    "From a change's write to its read by the change reader",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
READ_LIMIT = 500  # changes per read; a full read is followed by another at once
QUICK_POLL_SECONDS = 0.02  # first re-read while changes wait behind a running transaction (doubling)
MIN_READ_GAP_SECONDS = 0.02  # reads closer than this are merged: fewer, fuller wake-ups under load
IDLE_LINGER_SECONDS = 30.0  # the reader keeps listening this long after its last watcher left


class Hub:
    """The process's change reader and its subscriptions."""

    def __init__(
        self,
        feed: ChangeFeed,
        offload: Offload,
        connect: Connect | None,
        *,
        poll_seconds: float,
        account_check_seconds: float,
    ):
        self._feed = feed
        self._offload = offload
        self._connect = connect  # None: no LISTEN, polling only
        self._poll = poll_seconds
        self._check_every = account_check_seconds
        self._subscriptions: set[Subscription] = set()
        self._reached: Checkpoint | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._listen_again_at = 0.0
        self._last_read_at = float("-inf")

    @property
    def reached(self) -> Checkpoint | None:
        """How far the reader got (None while nobody watches)."""
        return self._reached

    def subscribe(self, account: Account, owner: UUID | None, horizon: Checkpoint) -> Subscription:
        """A new watcher; `horizon` is a position it knows to be final (where an idle reader starts)."""
        if self._reached is None:
            self._reached = horizon
        subscription = Subscription(account, owner, self._reached)
        self._subscriptions.add(subscription)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="change-reader")
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """The watcher is gone; with the last one the reader forgets its place (a new one starts fresh)."""
        subscription.close()
        self._subscriptions.discard(subscription)
        if not self._subscriptions:
            self._reached = None

    def notify(self) -> None:
        """A hint that the outbox grew (a NOTIFY): read soon."""
        self._wake.set()

    def fail_all(self, error: Callable[[], BaseException]) -> None:
        """End every watch with a fresh `error()` each (after what they were already offered)."""
        for subscription in list(self._subscriptions):
            subscription.fail(error())

    async def close(self) -> None:
        """Stop the reader and its LISTEN connection (the watches are ended by the caller)."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _listener_lost(self) -> None:
        log.warning("LISTEN connection lost; reading now, to tell a database outage from a lost hint")
        self._listen_again_at = time.monotonic() + self._poll
        self._wake.set()

    async def _run(self) -> None:
        listener = (
            Listener(self._connect, self._offload, self.notify, self._listener_lost)
            if self._connect
            else None
        )
        delay, idle_since, check_at = 0.0, None, time.monotonic() + self._check_every
        try:
            while not self._closed:
                try:
                    if (
                        listener is not None
                        and not listener.open
                        and time.monotonic() >= self._listen_again_at
                    ):
                        started = await listener.start()
                        self._listen_again_at = time.monotonic() + (0.0 if started else self._poll)
                    await self._sleep(min(delay, max(check_at - time.monotonic(), 0.0)))
                    if self._closed:
                        return
                    if not self._subscriptions:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > IDLE_LINGER_SECONDS:
                            return
                        delay = self._poll
                        continue
                    idle_since = None
                    if time.monotonic() >= check_at:
                        check_at = time.monotonic() + self._check_every
                        await self._check_accounts()
                    delay = await self._read_once(delay)
                except Exception:  # a bug: the watchers learn it (INTERNAL) and the reader goes on
                    log.exception("change reader failed")
                    self.fail_all(_internal)
                    delay = self._poll
        finally:
            if listener is not None:
                listener.close()
            self._task = None

    async def _sleep(self, delay: float) -> None:
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()
        gap = self._last_read_at + MIN_READ_GAP_SECONDS - time.monotonic()
        await asyncio.sleep(max(gap, 0.0))

    async def _read_once(self, delay: float) -> float:
        """One read for every watcher; returns how long to wait before the next one."""
        before = self._reached
        assert before is not None
        self._last_read_at = time.monotonic()
        try:
            read = await self._offload(self._feed.read, before.position, READ_LIMIT)
            READS.inc()
            self._offer(read, before)
        except DomainError as err:
            log.warning("change reader failed; ending every watch", extra={"reason": err.reason})
            self.fail_all(_database_lost)
            return self._poll
        except Exception:  # a bug: the watchers learn it (INTERNAL), the reader goes on
            log.exception("change reader failed")
            self.fail_all(_internal)
            return self._poll
        if read.full:
            return 0.0
        if read.blocked:  # committed changes wait behind a running transaction: look again soon, then less
            return QUICK_POLL_SECONDS if delay in (0.0, self._poll) else min(delay * 2, self._poll)
        return self._poll

    def _offer(self, read: Read, before: Checkpoint) -> None:
        if not self._subscriptions or self._reached is None:
            return
        now = datetime.now(UTC)
        for change in read.changes:
            LAG.observe(max((now - change.occurred_at).total_seconds(), 0.0))
        reached = read.reached(before, now)
        if reached.position >= self._reached.position:
            self._reached = reached
        for subscription in list(self._subscriptions):
            subscription.offer(read.changes, before, reached)

    async def _check_accounts(self) -> None:
        accounts = {subscription.account for subscription in self._subscriptions}
        if not accounts:
            return
        try:
            gone = await self._offload(self._feed.inactive, accounts)
        except Exception:  # a database outage ends the watches through the next read
            return
        for subscription in list(self._subscriptions):
            if subscription.account in gone:
                subscription.fail(AccountInactive())


def _database_lost() -> Unavailable:
    return Unavailable(
        "the change stream lost the database; resume with the last resume token",
        retry_after=1.0,
        reason="DATABASE_UNAVAILABLE",
    )


def _internal() -> DomainError:
    return DomainError("internal error in the change stream")
