"""The bounded thread pool on which the coroutines of a server run their blocking work."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent import futures
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Offload:
    """The bounded thread pool that runs blocking work (psycopg2, hashing) for the coroutines.

    The caller's context variables (the verified principal, the call record) are copied along.
    """

    def __init__(self, workers: int, name: str = "db"):
        self._pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on the pool and await its result."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        """Finish queued work and stop the threads."""
        self._pool.shutdown(wait=True)
