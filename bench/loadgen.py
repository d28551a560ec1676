"""Load generator, run as its own process: `python -m bench.loadgen SPEC.json` prints one JSON `Window`.

One workload at one fixed concurrency: N workers (asyncio on `grpc.aio`), each keeping exactly
one call in flight, for warm-up + duration seconds. Only calls that finish inside the measured
window (after the warm-up, before the stop) count, so the rate is completions per second even
when a call takes longer than the window. Every failed call in it is counted by status code;
nothing is retried or hidden. The `verify` workload is the raw password-hash baseline: N threads
calling the service's own hasher with the same parameters, no gRPC and no database.

The lines `window-start` and `window-end` are printed as the window opens and closes, so the
orchestrator measures the servers' CPU over exactly the window; the result is the last line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace

import grpc

from bench.calls import Call, PoolExhausted, make_calls
from bench.modes import HashParams
from bench.results import Window
from bench.users import User

WINDOW_START, WINDOW_END = "window-start", "window-end"


@dataclass(frozen=True)
class LoadSpec:
    """What one load-generator process runs."""

    workload: str
    concurrency: int
    warmup: float
    duration: float
    hash: HashParams
    targets: list[str] = field(default_factory=list)  # channel i goes to targets[i % len(targets)]
    users: list[User] = field(default_factory=list)
    channels: int = 0  # 0: min(concurrency, 8), at least one per target

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, text: str) -> LoadSpec:
        raw = json.loads(text)
        users = [User(**user) for user in raw.pop("users")]
        return cls(**{**raw, "hash": HashParams(**raw["hash"]), "users": users})


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def summarise(latencies: list[float], errors: Counter[str], measured: float) -> Window:
    """Rate of successful calls, latency percentiles and error counts of one measured window."""
    ordered = sorted(latencies)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Window(
        count=len(ordered),
        seconds=round(measured, 3),
        rate=round(len(ordered) / measured, 1) if measured > 0 else 0.0,
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        mean_ms=round(sum(ordered) / len(ordered) * 1000, 3) if ordered else None,
        errors=sum(errors.values()),
        error_codes=dict(errors),
        client_cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
    )


def mark(edge: str) -> None:
    print(edge, flush=True)


async def drive(spec: LoadSpec) -> Window:
    """Run the workers and measure the window after the warm-up."""
    count = spec.channels or max(min(spec.concurrency, 8), len(spec.targets))
    channels = [
        grpc.aio.insecure_channel(
            spec.targets[i % len(spec.targets)], options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for i in range(count)
    ]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), 10)
    calls = make_calls(spec.workload, spec.concurrency, spec.users, channels)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    start = time.perf_counter()
    measure_from = start + spec.warmup
    stop = measure_from + spec.duration

    async def edges() -> None:
        await asyncio.sleep(measure_from - time.perf_counter())
        mark(WINDOW_START)
        await asyncio.sleep(stop - time.perf_counter())
        mark(WINDOW_END)

    async def worker(call: Call) -> None:
        while True:
            began = time.perf_counter()
            if began >= stop:
                return
            failure = None
            try:
                await call()
            except grpc.aio.AioRpcError as err:
                failure = err.code().name
            except PoolExhausted as err:  # count it and stop this worker
                errors[str(err)] += 1
                return
            ended = time.perf_counter()
            if measure_from <= ended <= stop:
                if failure is None:
                    latencies.append(ended - began)
                else:
                    errors[failure] += 1

    await asyncio.gather(edges(), *(worker(call) for call in calls))
    for channel in channels:
        await channel.close(None)
    window = summarise(latencies, errors, spec.duration)
    if spec.workload == "update":  # tells the orchestrator which seeded rows are spent
        return replace(window, pending_left=[len(user.pending) for user in spec.users])
    return window


def verify_baseline(spec: LoadSpec) -> Window:
    """The raw password-verify rate: the service's hasher, same parameters, N threads, nothing else."""
    from auth_service.passwords import PasswordHasher

    params = spec.hash
    hasher = PasswordHasher(params.time_cost, params.memory_kib, params.parallelism)
    password = "bench-password-0123456789"
    stored = hasher.hash(password)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from = start + spec.warmup
    stop = measure_from + spec.duration

    def edges() -> None:
        time.sleep(max(measure_from - time.perf_counter(), 0))
        mark(WINDOW_START)
        time.sleep(max(stop - time.perf_counter(), 0))
        mark(WINDOW_END)

    def worker() -> None:
        while True:
            began = time.perf_counter()
            if began >= stop:
                return
            valid, _ = hasher.verify(password, stored)
            ended = time.perf_counter()
            if measure_from <= ended <= stop:
                with lock:
                    if valid:
                        latencies.append(ended - began)
                    else:
                        errors["INVALID"] += 1

    threads = [threading.Thread(target=edges)]
    threads += [threading.Thread(target=worker) for _ in range(spec.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarise(latencies, errors, spec.duration)


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = LoadSpec.load(handle.read())
    window = verify_baseline(spec) if spec.workload == "verify" else asyncio.run(drive(spec))
    print(json.dumps(asdict(window)))


if __name__ == "__main__":
    main()
