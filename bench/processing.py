"""`python -m bench.processing [--smoke] [--out DIR]`: processed-payment throughput through the sandbox.

Standalone, like `bench.watch`: an embedded PostgreSQL, both services and the processing worker as
processes (production settings), and the sandbox processor answering after 0 and after 50 ms.
For each latency, `--payments` payments with `pm_card_visa` are created by `--concurrency`
callers at once (closed loop); the figure is payments that reached COMPLETED per second, from the
first create to the last completion, with the create -> COMPLETED latency (PostgreSQL's own
timestamps). The baseline, measured in the same run just before, is the same number of plain
creates (no payment method: recorded, not charged), so the ratio is what charging costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import httpx
import psycopg2

from bench import ROOT
from bench.refdb import libpq_url
from bench.servers import free_port
from bench.watch_setup import Services, services
from bench.watch_setup import stack as make_stack
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc

API_KEY, WEBHOOK_SECRET = f"sk_test_{uuid.uuid4().hex}", f"whsec_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Point:
    latency_ms: int
    payments: int
    concurrency: int
    plain_creates_per_second: float  # the baseline
    processed_per_second: float
    ratio_to_baseline: float
    completion_p50_ms: float
    completion_p99_ms: float


def _create_all(address: str, tokens: list[str], count: int, concurrency: int, method: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)

        def one(index: int) -> str:
            request = pb.CreateTransactionRequest(
                type=pb.TRANSACTION_TYPE_PAYMENT,
                amount_minor=1250,
                currency="EUR",
                idempotency_key=f"bench-{uuid.uuid4()}",
                payment_method=method,
            )
            md = (("authorization", f"Bearer {tokens[index % len(tokens)]}"),)
            return str(stub.CreateTransaction(request, metadata=md, timeout=30).transaction.id)

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, range(count)))


def _completed(url: str, ids: list[str], seconds: float = 300.0) -> list[float]:
    """Create -> COMPLETED of each payment in ms, once all are final."""
    deadline = time.monotonic() + seconds
    with psycopg2.connect(libpq_url(url)) as conn, conn.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT status, extract(epoch FROM updated_at - created_at) * 1000 FROM payments.transactions"
                " WHERE id = ANY (%s::uuid[])",
                (ids,),
            )
            rows = cursor.fetchall()
            conn.rollback()
            if all(status == "COMPLETED" for status, _ms in rows) and len(rows) == len(ids):
                return sorted(float(ms) for _status, ms in rows)
            if time.monotonic() > deadline:
                raise SystemExit(f"{sum(s != 'COMPLETED' for s, _ in rows)} payments not completed in time")
            time.sleep(0.05)


def _start(argv: list[str], env: dict[str, str], log: Path, ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=log.open("w"))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(ready, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{argv[-1]} did not start: see {log}")
        time.sleep(0.1)


def point(
    running: Services,
    url: str,
    folder: Path,
    tokens: list[str],
    latency_ms: int,
    count: int,
    concurrency: int,
) -> Point:
    sandbox_port, webhook_port = free_port(), free_port()
    sandbox_env = {
        **os.environ,
        "SANDBOX_PORT": str(sandbox_port),
        "SANDBOX_API_KEY": API_KEY,
        "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SANDBOX_LATENCY_MS": str(latency_ms),
        "SANDBOX_DB_PATH": str(folder / f"sandbox-{latency_ms}.sqlite3"),
        "SANDBOX_WEBHOOK_URL": f"http://127.0.0.1:{webhook_port}/webhooks/sandbox",
    }
    worker_env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_ROLE": "payments_tx_svc",
        "PROCESSOR_URL": f"http://127.0.0.1:{sandbox_port}",
        "PROCESSOR_API_KEY": API_KEY,
        "PROCESSOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(webhook_port),
        "PROCESSING_METRICS_PORT": "0",
        "SUBMIT_POLL_SECONDS": "0.2",
    }
    sandbox = _start(
        [sys.executable, "-m", "sandbox_processor"],
        sandbox_env,
        folder / "sandbox.log",
        f"http://127.0.0.1:{sandbox_port}/healthz",
    )
    worker = _start(
        [sys.executable, "-m", "transaction_service.processing"],
        worker_env,
        folder / f"worker-{latency_ms}.log",
        f"http://127.0.0.1:{webhook_port}/readyz",
    )
    try:
        started = time.perf_counter()
        _create_all(running.transactions, tokens, count, concurrency, "")
        plain = count / (time.perf_counter() - started)
        started = time.perf_counter()
        ids = _create_all(running.transactions, tokens, count, concurrency, "pm_card_visa")
        latencies = _completed(url, ids)
        processed = count / (time.perf_counter() - started)
    finally:
        for process in (worker, sandbox):
            process.terminate()
            process.wait(30)
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    return Point(
        latency_ms,
        count,
        concurrency,
        round(plain, 1),
        round(processed, 1),
        round(processed / plain, 3),
        round(cut[49], 1),
        round(cut[98], 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.processing", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few payments per point (CI)")
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, help="write processing.json there")
    args = parser.parse_args(argv)
    count = 40 if args.smoke else args.payments
    os.environ["PAYMENT_PROCESSOR"] = "sandbox"  # the transaction service queues charged payments
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as scratch:
        folder = Path(scratch)
        with services(folder) as running:
            url = running.auth_env["DATABASE_URL"]
            tokens = make_stack(running, 0).user_tokens
            points = [point(running, url, folder, tokens, ms, count, args.concurrency) for ms in (0, 50)]
    lines = [
        "| sandbox latency | payments | in flight | plain creates/s (baseline) | processed/s | ÷ baseline "
        "| create → COMPLETED p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p.latency_ms} ms | {p.payments} | {p.concurrency} | {p.plain_creates_per_second} "
        f"| {p.processed_per_second} | {p.ratio_to_baseline} "
        f"| {p.completion_p50_ms} / {p.completion_p99_ms} ms |"
        for p in points
    ]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "processing.json").write_text(json.dumps([asdict(p) for p in points], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
