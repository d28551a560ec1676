"""`python -m bench.watch`: the change stream's delivery latency, and what watchers cost unary calls.

Standalone: it starts an embedded PostgreSQL in a temporary folder, migrates it, runs
`python -m auth_service` and `python -m transaction_service` as processes (production settings,
access log on, to a file), registers users through the RPCs and a service principal with the
`transactions:watch` scope through the CLI, then measures, every load in a process of its own:

1. delivery latency, commit to watcher: from a change's `occurred_at` (written by PostgreSQL just
   before its commit) to its receipt by a watcher of every user's changes (one clock: one
   machine), with 1 and with 100 watchers, under paced create loads (`--rates` per second);
2. the GetTransaction rate (closed loop, `--concurrency` calls in flight) with no watcher and with
   100 connected, in the order none, 100, 100, none, so a linear drift of the machine cancels.

It prints a markdown table and, with `--out`, writes the figures as JSON. Target (issue 12):
p99 <= 250 ms, and the get rate with 100 watchers within 10 % of the rate without.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.watch_load import Window, run_creates, run_gets, run_watchers
from bench.watch_setup import Stack, cpu_seconds, services
from bench.watch_setup import stack as make_stack

WATCHERS_PER_PROCESS = 25
SETTLE_SECONDS = 2.0  # from starting the load process to its measured window (its imports, its connection)
Job = tuple[Callable[..., None], tuple[Any, ...]]


@dataclass(frozen=True)
class Latency:
    """Commit-to-watcher delay of every change written in the window, at every watcher."""

    watchers: int
    rate: float
    creates: int
    deliveries: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cores: float  # CPU of the transaction service in the window, in cores


@dataclass(frozen=True)
class GetRate:
    """Closed-loop GetTransaction calls finished in the window, and the server's CPU per call."""

    watchers: int
    per_second: float
    server_cpu_ms: float


def _measure(
    stack: Stack, watchers: int, load: Callable[[Window], Job], seconds: float
) -> tuple[Any, Any, float]:
    """Start `watchers` watches (in processes of 25), then, once all are live, the load in a window.

    Returns the load's result, the watchers' receipts, and the server's CPU seconds in the window.
    """
    ctx = multiprocessing.get_context("spawn")
    stop, sizes = ctx.Event(), [WATCHERS_PER_PROCESS] * (watchers // WATCHERS_PER_PROCESS)
    sizes += [watchers % WATCHERS_PER_PROCESS] if watchers % WATCHERS_PER_PROCESS else []
    lives, queues = [ctx.Event() for _ in sizes], [ctx.Queue() for _ in sizes]
    watching = [
        ctx.Process(
            target=run_watchers, args=(stack.transactions, stack.watcher_token, size, live, stop, queue)
        )
        for size, live, queue in zip(sizes, lives, queues, strict=True)
    ]
    for process in watching:
        process.start()
    if not all(live.wait(60) for live in lives):
        raise SystemExit("not every watch started")
    start = time.time() + SETTLE_SECONDS
    window = Window(start, start + seconds)
    job, args = load(window)
    result = ctx.Queue()
    loader = ctx.Process(target=job, args=(*args, result))
    loader.start()
    time.sleep(max(window.start - time.time(), 0))
    before = cpu_seconds(stack.tx_pid)
    time.sleep(max(window.end - time.time(), 0))
    used = cpu_seconds(stack.tx_pid) - before
    outcome = result.get(timeout=120)
    time.sleep(1.0)  # the last changes of the window reach the watchers
    stop.set()
    receipts = [queue.get(timeout=60) for queue in queues]
    for process in [*watching, loader]:
        process.join(30)
    if any(part is None for part in receipts):
        raise SystemExit("a watch failed")
    in_window = [
        (occurred, got)
        for part in receipts
        for occurred, got in part
        if window.start <= occurred < window.end
    ]
    return outcome, in_window, used


def latency(stack: Stack, watchers: int, rate: float, seconds: float) -> Latency:
    def creates(window: Window) -> Job:
        return run_creates, (stack.transactions, stack.user_tokens, rate, window)

    created, receipts, used = _measure(stack, watchers, creates, seconds)
    samples = sorted(got - occurred for occurred, got in receipts)
    cut = statistics.quantiles(samples, n=100, method="inclusive")
    return Latency(
        watchers,
        rate,
        int(created),
        len(samples),
        round(cut[49] * 1000, 1),
        round(cut[98] * 1000, 1),
        round(samples[-1] * 1000, 1),
        round(used / seconds, 2),
    )


def get_rate(stack: Stack, watchers: int, concurrency: int, seconds: float) -> GetRate:
    def gets(window: Window) -> Job:
        return run_gets, (stack.transactions, stack.user_tokens[0], stack.ids, concurrency, window)

    done, _receipts, used = _measure(stack, watchers, gets, seconds)
    return GetRate(watchers, round(done / seconds, 1), round(used * 1000 / max(done, 1), 3))


def _pooled(rounds: list[GetRate], watchers: int) -> GetRate:
    mine = [r for r in rounds if r.watchers == watchers]
    rate = sum(r.per_second for r in mine) / len(mine)
    return GetRate(watchers, round(rate, 1), round(sum(r.server_cpu_ms for r in mine) / len(mine), 3))


def _print(latencies: list[Latency], rounds: list[GetRate], args: argparse.Namespace) -> None:
    print(f"## Change stream ({os.cpu_count()} cores, {args.seconds:g} s windows)\n")
    print("Commit to watcher; each watcher sees every change:\n")
    print("| creates/s | watchers | creates | deliveries | p50 ms | p99 ms | max ms | server cores |")
    print("|---|---|---|---|---|---|---|---|")
    for row in latencies:
        cells = (f"{row.rate:g}", row.watchers, row.creates, row.deliveries, row.p50_ms, row.p99_ms)
        print("| " + " | ".join(map(str, (*cells, row.max_ms, row.server_cores))) + " |")
    none, hundred = _pooled(rounds, 0), _pooled(rounds, 100)
    listed = ", ".join(f"{r.watchers} watchers {r.per_second}/s" for r in rounds)
    print(f"\nGetTransaction, {args.concurrency} in flight (rounds: {listed})\n")
    print("| watchers connected | gets/s | server CPU ms/get |\n|---|---|---|")
    for pooled in (none, hundred):
        print(f"| {pooled.watchers} | {pooled.per_second} | {pooled.server_cpu_ms} |")
    rate, cpu = hundred.per_second / none.per_second, hundred.server_cpu_ms / none.server_cpu_ms
    print(f"\nwith 100 watchers / without: {rate:.3f} (rate), {cpu:.3f} (server CPU per get)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured window")
    parser.add_argument("--rates", type=float, nargs="+", default=[30.0, 60.0, 100.0], help="creates/s")
    parser.add_argument(
        "--watchers", type=int, nargs="+", default=[1, 100], help="watchers of the latency runs"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="get calls in flight")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp, services(Path(tmp)) as running:
        stack = make_stack(running, seeded=200)
        latencies = [latency(stack, n, rate, args.seconds) for rate in args.rates for n in args.watchers]
        rounds = [get_rate(stack, n, args.concurrency, args.seconds) for n in (0, 100, 100, 0)]
    _print(latencies, rounds, args)
    if args.out:
        figures = {"latency": [asdict(row) for row in latencies], "get_rate": [asdict(row) for row in rounds]}
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
