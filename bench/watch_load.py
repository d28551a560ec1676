"""Load processes of `python -m bench.watch`: watchers, a paced create load, a closed-loop get load.

Each runs in a process of its own (multiprocessing, spawn), on `grpc.aio`, so that decoding what
100 watchers receive does not share a GIL with the load that causes it. Each returns plain
numbers through a queue: latencies in seconds, or a count of completed calls.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc

Metadata = tuple[tuple[str, str], ...]
STREAMS_PER_CONNECTION = 25  # a connection carries at most GRPC_MAX_CONCURRENT_STREAMS (100) calls


@dataclass(frozen=True)
class Window:
    """The measured interval, on the wall clock shared by every process (and PostgreSQL)."""

    start: float
    end: float


def _md(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def _channel(address: str, own: bool) -> grpc.aio.Channel:
    options = [("grpc.use_local_subchannel_pool", 1)] if own else []
    return grpc.aio.insecure_channel(address, options=options)


def run_watchers(address: str, token: str, count: int, live: Event, stop: Event, out: Queue[Any]) -> None:
    """`count` watches of every user's changes; sets `live` once all started, runs until `stop`.

    Puts the (occurred_at, received) wall-clock times of every change received, or None if a watch
    failed.
    """
    out.put(asyncio.run(_watchers(address, token, count, live, stop)))


async def _watchers(
    address: str, token: str, count: int, live: Event, stop: Event
) -> list[tuple[float, float]] | None:
    channels = [_channel(address, own=True) for _ in range(-(-count // STREAMS_PER_CONNECTION))]
    received: list[tuple[float, float]] = []
    started, failed = 0, False

    async def watch(channel: grpc.aio.Channel) -> None:
        nonlocal started, failed
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        call = stub.WatchTransactions(pb.WatchTransactionsRequest(), metadata=_md(token))
        try:
            await call.initial_metadata()
            started += 1
            if started == count:
                live.set()
            async for change in call:
                received.append((change.occurred_at.seconds + change.occurred_at.nanos / 1e9, time.time()))
        except grpc.aio.AioRpcError:
            failed = True

    tasks = [asyncio.create_task(watch(channels[i // STREAMS_PER_CONNECTION])) for i in range(count)]
    while not stop.is_set() and not failed:
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close(None)
    return None if failed else received


def run_creates(address: str, tokens: Sequence[str], rate: float, window: Window, out: Queue[Any]) -> None:
    """CreateTransaction at `rate` per second (open loop) from now to the window's end; puts the count."""
    out.put(asyncio.run(_creates(address, tokens, rate, window)))


async def _creates(address: str, tokens: Sequence[str], rate: float, window: Window) -> int:
    channel = _channel(address, own=False)
    stub = transaction_pb2_grpc.TransactionServiceStub(channel)
    done = 0

    async def create(token: str) -> None:
        nonlocal done
        request = pb.CreateTransactionRequest(
            type=pb.TRANSACTION_TYPE_PAYMENT,
            amount_minor=random.randint(100, 10_000),
            currency="EUR",
            description="bench",
            idempotency_key=f"bench-{uuid.uuid4()}",
        )
        await stub.CreateTransaction(request, metadata=_md(token), timeout=10)
        done += 1

    pending: set[asyncio.Task[None]] = set()
    started, sent = time.monotonic(), 0
    while time.time() < window.end:
        task = asyncio.create_task(create(tokens[sent % len(tokens)]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        await asyncio.sleep(max(started + sent / rate - time.monotonic(), 0))
    if pending:
        await asyncio.wait(pending, timeout=10)
    await channel.close(None)
    return done


def run_gets(
    address: str, token: str, ids: Sequence[str], concurrency: int, window: Window, out: Queue[Any]
) -> None:
    """GetTransaction with `concurrency` calls in flight; puts how many finished inside the window."""
    out.put(asyncio.run(_gets(address, token, ids, concurrency, window)))


async def _gets(address: str, token: str, ids: Sequence[str], concurrency: int, window: Window) -> int:
    channel = _channel(address, own=False)
    stub = transaction_pb2_grpc.TransactionServiceStub(channel)
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.time() < window.end:
            request = pb.GetTransactionRequest(id=random.choice(ids))
            await stub.GetTransaction(request, metadata=_md(token), timeout=10)
            if window.start <= time.time() < window.end:
                done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await channel.close(None)
    return done
