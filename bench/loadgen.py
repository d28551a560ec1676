"""Load generator, run as its own process: `python -m bench.loadgen SPEC.json` prints one JSON result.

One workload at one fixed concurrency: N workers (asyncio on `grpc.aio`), each keeping exactly
one call in flight, for warm-up + duration seconds. Only calls that finish inside the measured
window (after the warm-up, before the stop) count, so the rate is completions per second even
when a call takes longer than the window. Every failed call in it is counted by status code;
nothing is retried or hidden. The `verify` workload is the raw password-hash baseline: N threads
calling the service's own hasher with the same parameters, no gRPC and no database.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as tx_pb2
from payments.transaction.v1 import transaction_pb2_grpc

ECHO_METHOD = "/bench.Echo/Echo"
ECHO_PAYLOAD = b"x" * 96  # about the size of a small create request
CALL_TIMEOUT = 10.0

Call = Callable[[], Awaitable[Any]]


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def summarise(latencies: list[float], errors: Counter[str], measured: float) -> dict[str, Any]:
    """Rate of successful calls, latency percentiles and error counts of one measured window."""
    ordered = sorted(latencies)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "count": len(ordered),
        "seconds": round(measured, 3),
        "rate": round(len(ordered) / measured, 1) if measured > 0 else 0.0,
        "p50_ms": percentile(ordered, 0.50),
        "p99_ms": percentile(ordered, 0.99),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3) if ordered else None,
        "errors": sum(errors.values()),
        "error_codes": dict(errors),
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def _user_md(user: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {user['token']}"),)


def make_calls(spec: dict[str, Any], channels: list[grpc.aio.Channel]) -> list[Call]:
    """One call factory per worker: worker i uses channel i % C and user i % U."""
    workload = spec["workload"]
    users: list[dict[str, Any]] = spec.get("users", [])
    calls: list[Call] = []
    for i in range(spec["concurrency"]):
        channel = channels[i % len(channels)]
        user = users[i % len(users)] if users else {}
        calls.append(_call(workload, channel, user))
    return calls


def _call(workload: str, channel: grpc.aio.Channel, user: dict[str, Any]) -> Call:
    if workload == "echo":
        echo = channel.unary_unary(ECHO_METHOD)

        def call_echo() -> Awaitable[Any]:
            return echo(ECHO_PAYLOAD, timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]

        return call_echo
    if workload == "login":
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        login = auth_pb2.LoginRequest(
            password=auth_pb2.PasswordCredentials(email=user["email"], password=user["password"])
        )
        return lambda: auth.Login(login, timeout=CALL_TIMEOUT)
    stub = transaction_pb2_grpc.TransactionServiceStub(channel)
    md = _user_md(user)
    if workload == "create":

        def create() -> Awaitable[Any]:
            request = tx_pb2.CreateTransactionRequest(
                type=tx_pb2.TRANSACTION_TYPE_PAYMENT,
                amount_minor=1250,
                currency="EUR",
                description="bench payment",
                metadata={"order": "bench"},
                idempotency_key=uuid.uuid4().hex,  # a fresh key: every call creates a row
            )
            return stub.CreateTransaction(request, metadata=md, timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]

        return create
    if workload == "get":
        ids: list[str] = user["ids"]
        return lambda: stub.GetTransaction(
            tx_pb2.GetTransactionRequest(id=random.choice(ids)), metadata=md, timeout=CALL_TIMEOUT
        )
    if workload == "list":
        page = tx_pb2.ListTransactionsRequest(page_size=50)
        return lambda: stub.ListTransactions(page, metadata=md, timeout=CALL_TIMEOUT)
    if workload == "update":
        pending: list[str] = user["pending"]  # shared by the workers of this user; each id used once

        def cancel() -> Awaitable[Any]:
            if not pending:
                raise RuntimeError("the pool of PENDING transactions is exhausted; seed more")
            request = tx_pb2.UpdateTransactionStatusRequest(
                id=pending.pop(), status=tx_pb2.TRANSACTION_STATUS_CANCELLED, reason="bench"
            )
            return stub.UpdateTransactionStatus(request, metadata=md, timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]

        return cancel
    raise SystemExit(f"unknown workload {workload!r}")


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workers and measure the window after the warm-up."""
    count = spec.get("channels") or min(spec["concurrency"], 8)
    channels = [
        grpc.aio.insecure_channel(spec["target"], options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), 10)
    calls = make_calls(spec, channels)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    start = time.perf_counter()
    measure_from = start + spec["warmup"]
    stop = measure_from + spec["duration"]

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
            except RuntimeError as err:  # e.g. the update pool ran dry: count it and stop this worker
                errors[str(err)] += 1
                return
            ended = time.perf_counter()
            if measure_from <= ended <= stop:
                if failure is None:
                    latencies.append(ended - began)
                else:
                    errors[failure] += 1

    await asyncio.gather(*(worker(call) for call in calls))
    for channel in channels:
        await channel.close()
    result = summarise(latencies, errors, spec["duration"])
    if spec["workload"] == "update":  # tells the orchestrator which seeded rows are spent
        result["pending_left"] = [len(user["pending"]) for user in spec["users"]]
    return result


def verify_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """The raw password-verify rate: the service's hasher, same parameters, N threads, nothing else."""
    from auth_service.passwords import PasswordHasher

    params = spec["hash"]
    hasher = PasswordHasher(params["time_cost"], params["memory_kib"], params["parallelism"])
    password = "bench-password-0123456789"
    stored = hasher.hash(password)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from = start + spec["warmup"]
    stop = measure_from + spec["duration"]

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

    threads = [threading.Thread(target=worker) for _ in range(spec["concurrency"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarise(latencies, errors, spec["duration"])


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    result = verify_baseline(spec) if spec["workload"] == "verify" else asyncio.run(drive(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
