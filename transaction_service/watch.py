"""The WatchTransactions use case: where a watch starts, and the life of one stream.

A watch starts at its resume token's checkpoint, or at the current horizon (empty token). It
subscribes to the process's reader (`hub.Hub`), first catches up by itself from its checkpoint to
where the reader started serving it (bounded reads of its own), then sends what the reader
offers, skipping anything at or before its checkpoint, so the hand-over neither skips nor
repeats. It ends with UNAUTHENTICATED at its token's expiry or when its account is disabled,
with UNAVAILABLE on drain or database loss; those endings carry the checkpoint's resume token
in their ErrorInfo metadata. Beyond `limit` open watches a new one is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from uuid import UUID

from prometheus_client import Gauge

from payments_common.errors import DomainError, ResourceExhausted, Unauthenticated, Unavailable
from payments_common.server import Offload
from payments_common.tokens import Principal
from transaction_service.changes import Change, Checkpoint, Position
from transaction_service.feed import ChangeFeed
from transaction_service.hub import Hub
from transaction_service.repository import Account
from transaction_service.resume import Binding, ResumeTokens

# the use cases' own definitions of the account a call needs (claims included) and of its refusal
from transaction_service.service import caller_account, inactive_error
from transaction_service.subscription import AccountInactive, Lagging, Subscription

WATCHERS = Gauge("transaction_watchers", "Open WatchTransactions streams of this process")
CATCH_UP_SCAN = 2_000  # events scanned per catch-up round trip, whatever the filter keeps
# a change and the resume token just after it; the first item (None, token) says the watch is live
Item = tuple[Change | None, str]


class Watches:
    """Admits watches (up to `limit` per process) and runs each one."""

    def __init__(
        self,
        feed: ChangeFeed,
        hub: Hub,
        tokens: ResumeTokens,
        offload: Offload,
        limit: int,
        clock: Callable[[], float] = time.time,
    ):
        self._feed = feed
        self._hub = hub
        self._tokens = tokens
        self._offload = offload
        self._limit = limit
        self._clock = clock
        self._open = 0
        self._draining = False

    @property
    def open(self) -> int:
        """Watches running now (admitted, not yet ended)."""
        return self._open

    def drain(self) -> None:
        """End every watch with UNAVAILABLE and refuse new ones (the server is stopping)."""
        self._draining = True
        self._hub.fail_all(_draining)

    async def follow(
        self, principal: Principal, owner: UUID | None, resume_token: str, timeout_ms: int
    ) -> AsyncGenerator[Item, None]:
        """The changes `principal` may see of `owner` (None: every user), after `resume_token`.

        One generator for the whole watch (every layer costs each message a hop): the start, then
        catching up by itself to where the reader serves it, then what the reader offers; again
        after lagging behind the reader.
        """
        binding = self._tokens.bind(principal.subject, owner)
        start = self._tokens.read(binding, resume_token) if resume_token else None
        self._admit()
        try:
            account = caller_account(principal)
            horizon = await self._offload(self._feed.start, account, timeout_ms)
            if horizon is None:
                raise inactive_error(principal)
            progress = _Progress(start or Checkpoint(horizon, self._now()))
            subscription = self._subscribe(principal, account, owner, horizon)
            try:
                yield None, self._tokens.issue(binding, progress.point)
                while True:
                    try:
                        while progress.point.position < subscription.origin.position:
                            found, after = await self._catch_up(
                                principal, owner, subscription, progress, timeout_ms
                            )
                            for change in found:
                                yield change, self._sent(binding, progress, change)
                            progress.reach(after)
                        while True:
                            for change in await subscription.take():
                                if change.position > progress.point.position:
                                    yield change, self._sent(binding, progress, change)
                            if subscription.settled:  # every change offered was sent: none left to skip
                                progress.reach(subscription.frontier)
                    except Lagging:  # catch up by itself again, from its own checkpoint
                        horizon = max(horizon, subscription.frontier.position)
                        self._hub.unsubscribe(subscription)
                        subscription = self._subscribe(principal, account, owner, horizon)
            except AccountInactive:
                raise self._ending(inactive_error(principal), binding, progress) from None
            except DomainError as err:
                raise self._ending(err, binding, progress) from None
            finally:
                self._hub.unsubscribe(subscription)
        finally:
            self._open -= 1
            WATCHERS.dec()

    def _admit(self) -> None:
        if self._draining:
            raise _draining()
        if self._open >= self._limit:
            raise ResourceExhausted(
                f"this server already serves its {self._limit} watchers; retry later",
                retry_after=2.0,
                reason="TOO_MANY_WATCHERS",
            )
        self._open += 1
        WATCHERS.inc()

    def _subscribe(
        self, principal: Principal, account: Account, owner: UUID | None, horizon: Position
    ) -> Subscription:
        subscription = self._hub.subscribe(account, owner, Checkpoint(horizon, self._now()))
        subscription.expire_at(float(principal.expires_at), _expired)
        return subscription

    async def _catch_up(
        self,
        principal: Principal,
        owner: UUID | None,
        subscription: Subscription,
        progress: _Progress,
        timeout_ms: int,
    ) -> tuple[list[Change], Checkpoint]:
        """One bounded read between the watch's checkpoint and the reader's origin, and where it ends."""
        if self._clock() >= principal.expires_at:
            raise _expired()
        upto = subscription.origin
        found = await self._offload(
            self._feed.catch_up, progress.point.position, upto.position, owner, CATCH_UP_SCAN, timeout_ms
        )
        if found.scanned_to is None or found.scanned_to >= upto.position:
            return found.changes, upto  # nothing else in the range
        return found.changes, Checkpoint(found.scanned_to, progress.point.as_of)

    def _sent(self, binding: Binding, progress: _Progress, change: Change) -> str:
        progress.point = progress.point.after(change)
        return self._tokens.issue(binding, progress.point)

    def _ending(self, error: DomainError, binding: Binding, progress: _Progress) -> DomainError:
        """The error that ends a stream, with the resume token of where it stopped."""
        error.metadata["resume_token"] = self._tokens.issue(binding, progress.point)
        return error

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


class _Progress:
    """How far one watch got: every change it may see up to `point` was sent."""

    __slots__ = ("point",)

    def __init__(self, point: Checkpoint):
        self.point = point

    def reach(self, other: Checkpoint) -> None:
        """Move on to `other` if it is further (a scan or a read got there with nothing to send)."""
        if other.position > self.point.position:
            self.point = other


def _expired() -> Unauthenticated:
    return Unauthenticated("access token expired; watch again with a fresh token", reason="TOKEN_EXPIRED")


def _draining() -> Unavailable:
    return Unavailable(
        "the server is shutting down; resume on another instance with the last resume token",
        retry_after=0.5,
        reason="SERVER_DRAINING",
    )
