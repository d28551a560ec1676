"""What the change reader keeps for one watcher: the changes it may see, until the watcher takes them.

A subscription holds at most `MAX_BUFFERED` changes; beyond that its watcher is told it lags and
catches up from its own checkpoint (by itself, with bounded reads), so a slow watcher costs
memory only up to a bound and never slows the reader or the other watchers. Loop-thread only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from uuid import UUID

from transaction_service.changes import Change, Checkpoint
from transaction_service.repository import Account

MAX_BUFFERED = 10_000  # changes held for one watcher before it must catch up by itself


class Lagging(Exception):
    """The watcher fell too far behind the reader: it catches up from its checkpoint by itself."""


class AccountInactive(Exception):
    """The watcher's account was disabled, deleted, or lost a claim of its token."""


class Subscription:
    """What the reader keeps for one watcher: the changes it may see, and how far the reader got."""

    def __init__(self, account: Account, owner: UUID | None, origin: Checkpoint):
        self.account = account
        self.owner = owner  # None: every user's changes
        self.origin = origin  # the reader's position when it subscribed: later changes arrive here
        self.frontier = origin  # every change it may see up to here was offered
        self._pending: deque[Change] = deque()
        self._failure: BaseException | None = None
        self._ready = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def settled(self) -> bool:
        """True when nothing offered is waiting, so `frontier` is where the watcher stands."""
        return not self._pending

    def offer(self, changes: list[Change], before: Checkpoint, reached: Checkpoint) -> None:
        """The reader's latest read, of the changes after `before` up to `reached`: keep this watcher's.

        A read that began beyond where this subscription stands (it subscribed, from an older
        horizon, while that read was under way) would leave a gap: the watcher catches up instead.
        """
        if self._failure is not None:
            return
        owner = self.owner
        mine = changes if owner is None else [c for c in changes if c.owner == owner]
        if before.position > self.frontier.position or len(self._pending) + len(mine) > MAX_BUFFERED:
            self._pending.clear()
            self.fail(Lagging())
        elif mine:
            self._pending.extend(mine)
            self._ready.set()
        # also when lagging: a watcher that subscribes again starts beyond what it must catch up on
        if reached.position > self.frontier.position:
            self.frontier = reached

    def fail(self, error: BaseException) -> None:
        """End the watch with `error` once the changes already offered are taken."""
        if self._failure is None:
            self._failure = error
            self._ready.set()

    def expire_at(self, deadline: float, error: Callable[[], BaseException]) -> None:
        """End the watch with `error()` at `deadline` (epoch seconds): its access token's expiry."""
        delay = max(deadline - time.time(), 0.0)
        self._expiry = asyncio.get_running_loop().call_later(delay, lambda: self.fail(error()))

    def close(self) -> None:
        """The watcher is gone: forget its timer."""
        if self._expiry is not None:
            self._expiry.cancel()

    async def take(self) -> list[Change]:
        """The changes offered so far, waiting for some; raises what ended the watch."""
        while not self._pending:
            if self._failure is not None:
                raise self._failure
            self._ready.clear()
            await self._ready.wait()
        taken = list(self._pending)
        self._pending.clear()
        return taken
