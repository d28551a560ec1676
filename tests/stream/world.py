"""The world of the in-memory stream tests: an outbox in memory, its reader, the watches, a loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest

from payments_common.errors import DomainError
from payments_common.server import Offload
from payments_common.tokens import Principal
from tests.stream.memory_feed import MemoryFeed
from transaction_service.changes import Change, Checkpoint
from transaction_service.hub import Hub
from transaction_service.resume import ResumeTokens
from transaction_service.watch import Watches

T = TypeVar("T")
KEY = b"k" * 32


class Stream:
    """The world of one test: an outbox in memory, its reader, the watches, and a way to watch."""

    def __init__(self, *, poll: float = 10.0, check: float = 10.0, limit: int = 200):
        self.feed = MemoryFeed()
        self.offload = Offload(4, "test")
        self.hub = Hub(self.feed, self.offload, None, poll_seconds=poll, account_check_seconds=check)
        self.tokens = ResumeTokens(KEY, 3600)
        self.watches = Watches(self.feed, self.hub, self.tokens, self.offload, limit)

    @staticmethod
    def user(expires_in: float = 60.0) -> Principal:
        return Principal(str(uuid4()), "user", expires_at=int(time.time() + expires_in))

    def follow(self, principal: Principal, token: str = "", owner: UUID | None = None) -> AsyncIterator[Any]:
        return self.watches.follow(principal, owner or UUID(principal.subject), token, 1_000)

    async def collect(
        self,
        principal: Principal,
        count: int,
        token: str = "",
        pace: float = 0.0,
        live: asyncio.Event | None = None,
    ) -> list[Change]:
        """The first `count` changes one watch sends (after `pace` seconds each)."""
        got: list[Change] = []
        async with contextlib.aclosing(self.follow(principal, token)) as changes:
            async for change, _token in changes:
                if change is None:
                    if live is not None:
                        live.set()
                    continue
                got.append(change)
                if len(got) == count:
                    return got
                await asyncio.sleep(pace)
        return got

    async def ending(self, principal: Principal, live: asyncio.Event) -> DomainError:
        """The error that ends one watch."""
        with pytest.raises(DomainError) as raised:
            await self.collect(principal, 1_000_000, live=live)
        return raised.value

    def token_after(self, principal: Principal, change: Change) -> str:
        binding = self.tokens.bind(principal.subject, UUID(principal.subject))
        return self.tokens.issue(binding, Checkpoint(change.position, change.occurred_at))

    def close(self) -> None:
        self.offload.shutdown()


def run(test: Callable[[Stream], Awaitable[T]], timeout: float = 10.0, **options: Any) -> T:
    """Run a scenario on a loop of its own, on a thread of its own (another test may leave a loop
    running on this one, as Playwright's sync API does)."""
    stream = Stream(**options)

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(test(stream), timeout)
        finally:
            await stream.hub.close()

    try:
        with ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, bounded()).result(timeout + 5)
    finally:
        stream.close()


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
