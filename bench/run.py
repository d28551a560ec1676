"""Orchestrates one benchmark run: `python -m bench [--smoke] [--out DIR] [--keep DIR]`.

1. embedded PostgreSQL (or BENCH_DATABASE_URL), migrations, echo + auth + transaction servers
   as separate processes, users seeded through the real AuthService, rows seeded by SQL;
2. every workload and baseline at each concurrency level, each in a fresh load-generator process,
   with CPU and peak RSS of every server process (and PostgreSQL) sampled during the run;
3. the history-length run (list with 1 k vs 1 M rows for the caller; create on the large table);
4. the scaling run (2 processes per service on one SO_REUSEPORT port vs 1);
5. latest.json, latest.md and latest.png in the output folder (bench/results by default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import pgbase, report
from bench.system import (
    ROOT,
    Database,
    Monitor,
    Services,
    User,
    analyze,
    register_users,
    seed_transactions,
    start_database,
    workdir,
)

# the production defaults of AuthSettings; smoke runs use cheap ones (like the test suite)
FULL_HASH = {"time_cost": 2, "memory_kib": 19456, "parallelism": 1}
SMOKE_HASH = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}
SERVICE_OF = {
    "echo": "echo",
    "create": "tx",
    "get": "tx",
    "list": "tx",
    "update": "tx",
    "login": "auth",
    "password_verify": None,
    "pg_insert": None,
}
SERVICE_WORKLOADS = ["create", "get", "list", "update", "login"]
BASELINES = ["echo", "password_verify", "pg_insert"]


@dataclass
class Mode:
    name: str
    levels: list[int]
    warmup: float
    duration: float
    users: int
    rows_per_user: int
    pending_per_user: int
    history_rows: tuple[int, int]
    history_levels: list[int]
    scaling_levels: list[int]
    scaling_workloads: list[str]
    hash: dict[str, int] = field(default_factory=lambda: dict(FULL_HASH))


FULL = Mode(
    name="full",
    levels=[1, 16, 64],
    warmup=1.0,
    duration=5.0,
    users=8,
    rows_per_user=1000,
    pending_per_user=6000,
    history_rows=(1_000, 1_000_000),
    history_levels=[1, 16],
    scaling_levels=[16, 64],
    scaling_workloads=["echo", "create", "get", "list", "login"],
)
SMOKE = Mode(
    name="smoke",
    levels=[4],
    warmup=0.2,
    duration=0.6,
    users=2,
    rows_per_user=100,
    pending_per_user=1500,
    history_rows=(100, 2_000),
    history_levels=[1],
    scaling_levels=[4],
    scaling_workloads=["echo", "create"],
    hash=dict(SMOKE_HASH),
)


class Bench:
    """State of one run: the database, the servers, the seeded users and the results so far."""

    def __init__(self, mode: Mode, scratch: Path):
        self.mode = mode
        self.scratch = scratch
        self.database: Database | None = None
        self.services: Services | None = None
        self.users: list[User] = []
        self.results: dict[str, Any] = {}

    # --- one measured point -------------------------------------------------------------
    def point(self, workload: str, concurrency: int, users: list[User] | None = None) -> dict[str, Any]:
        """Run one workload at one concurrency and return its measurements."""
        assert self.services is not None and self.database is not None
        mode = self.mode
        spec: dict[str, Any] = {
            "workload": "verify" if workload == "password_verify" else workload,
            "concurrency": concurrency,
            "warmup": mode.warmup,
            "duration": mode.duration,
            "hash": mode.hash,
        }
        service = SERVICE_OF.get(workload)
        if service is not None:
            spec["target"] = self.services.address(service)
        chosen = users if users is not None else self.users
        spec["users"] = [u.spec() for u in chosen]
        with Monitor(self.services.pids(), self.database.postmaster) as monitor:
            if workload == "pg_insert":
                result = pgbase.run(self.database.url, chosen[0].id, spec, self.scratch / "pgbench")
            else:
                result = self._loadgen(spec)
        if workload == "update":
            for user, left in zip(chosen, result.pop("pending_left", []), strict=False):
                del user.pending[left:]
        result["resources"] = monitor.result
        label = f"{workload}@{concurrency}"
        print(
            f"  {label:<22} {result.get('rate', 0):>9.1f}/s  p50 {result.get('p50_ms')} ms"
            f"  p99 {result.get('p99_ms')} ms  errors {result.get('errors')}",
            flush=True,
        )
        return result

    def _loadgen(self, spec: dict[str, Any]) -> dict[str, Any]:
        path = self.scratch / "spec.json"
        path.write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=spec["warmup"] + spec["duration"] + 60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    # --- phases -------------------------------------------------------------------------------
    def setup(self) -> None:
        mode = self.mode
        started = time.perf_counter()
        self.database = start_database(self.scratch)
        hash_env = {
            "PASSWORD_TIME_COST": str(mode.hash["time_cost"]),
            "PASSWORD_MEMORY_KIB": str(mode.hash["memory_kib"]),
            "PASSWORD_PARALLELISM": str(mode.hash["parallelism"]),
        }
        self.services = Services(self.database, self.scratch, hash_env)
        self.services.start()
        self.users = register_users(self.services.address("auth"), mode.users, "bench")
        engine = self.database.engine()
        for user in self.users:
            user.ids = seed_transactions(engine, user.id, mode.rows_per_user)
            user.pending = seed_transactions(engine, user.id, mode.pending_per_user, status="PENDING")
        analyze(engine)
        engine.dispose()
        print(f"setup: {time.perf_counter() - started:.1f}s", flush=True)

    def main_run(self) -> None:
        """Every workload at every level. Each service point is paired with its baseline measured
        just before it (echo; raw verify for Login), so a ratio never spans a drift of the machine."""
        workloads: dict[str, Any] = {}

        def record(workload: str, levels: dict[str, Any]) -> None:
            workloads[workload] = {
                "kind": "baseline" if workload in BASELINES else "service",
                "service": SERVICE_OF[workload],
                "levels": levels,
            }

        record("echo", {str(c): self.point("echo", c) for c in self.mode.levels})
        verify: dict[str, Any] = {}
        for workload in SERVICE_WORKLOADS:
            levels = {}
            for concurrency in self.mode.levels:
                if workload == "login":
                    base = verify[str(concurrency)] = self.point("password_verify", concurrency)
                    key = "ratio_to_password_verify"
                else:
                    base = self.point("echo", concurrency)
                    key = "ratio_to_echo"
                result = self.point(workload, concurrency)
                result["paired_baseline_rate"] = base.get("rate")
                result[key] = round(result["rate"] / base["rate"], 3) if base.get("rate") else None
                levels[str(concurrency)] = result
            record(workload, levels)
        record("password_verify", verify)
        record("pg_insert", {str(c): self.point("pg_insert", c) for c in self.mode.levels})
        self.results["workloads"] = workloads

    def history_run(self) -> None:
        """List page time with a short vs a long history; create latency once the table is large."""
        assert self.services is not None and self.database is not None
        small_rows, big_rows = self.mode.history_rows
        small, big = register_users(self.services.address("auth"), 2, "history")
        engine = self.database.engine()
        started = time.perf_counter()
        seed_transactions(engine, small.id, small_rows, returning=False)
        seed_transactions(engine, big.id, big_rows, returning=False)
        analyze(engine)
        seeded = time.perf_counter() - started
        engine.dispose()
        print(f"history: seeded {small_rows} + {big_rows} rows in {seeded:.1f}s", flush=True)
        history: dict[str, Any] = {"rows": {"short": small_rows, "long": big_rows}, "seed_seconds": seeded}
        for level in self.mode.history_levels:
            short = self.point("list", level, [small])
            long = self.point("list", level, [big])
            ratio = (long["p50_ms"] / short["p50_ms"]) if short.get("p50_ms") and long.get("p50_ms") else None
            history[f"list@{level}"] = {
                "short": short,
                "long": long,
                "p50_ratio": round(ratio, 3) if ratio else None,
            }
        level = 16 if 16 in self.mode.levels else self.mode.levels[-1]
        large = self.point("create", level, [big])
        small_table = self.results["workloads"]["create"]["levels"][str(level)]
        history["create_large_table"] = {
            "level": level,
            "table_rows_before": big_rows + small_rows,
            "large": large,
            "p50_ratio_to_main_run": (
                round(large["p50_ms"] / small_table["p50_ms"], 3)
                if large.get("p50_ms") and small_table.get("p50_ms")
                else None
            ),
        }
        self.results["history"] = history

    def scaling_run(self) -> None:
        """The same workloads with 2 processes per service (one port, SO_REUSEPORT)."""
        assert self.services is not None
        self.services.stop()
        self.services.processes = 2
        self.services.start()
        scaling: dict[str, Any] = {}
        for workload in self.mode.scaling_workloads:
            for level in self.mode.scaling_levels:
                one = self.results["workloads"][workload]["levels"][str(level)]
                two = self.point(workload, level)
                scaling[f"{workload}@{level}"] = {
                    "one_process": one,
                    "two_processes": two,
                    "rate_ratio": round(two["rate"] / one["rate"], 3) if one.get("rate") else None,
                }
        self.results["scaling"] = scaling

    def close(self) -> None:
        if self.services is not None:
            self.services.stop()
        if self.database is not None:
            self.database.close()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import grpc
    import psutil
    import sqlalchemy

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def postgres_version(bench: Bench) -> str:
    from sqlalchemy import text

    assert bench.database is not None
    engine = bench.database.engine()
    with engine.connect() as conn:
        version = str(conn.execute(text("SHOW server_version")).scalar())
    engine.dispose()
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds of everything (CI)")
    parser.add_argument(
        "--out", type=Path, help="report folder (default bench/results; smoke: .data/bench-smoke)"
    )
    parser.add_argument("--keep", type=Path, help="keep logs and the database folder here")
    args = parser.parse_args(argv)
    mode = SMOKE if args.smoke else FULL
    if args.out is None:  # a smoke run never overwrites the published results
        args.out = ROOT / ".data" / "bench-smoke" if args.smoke else ROOT / "bench" / "results"
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "mode": mode.name,
        "command": "python -m bench" + (" --smoke" if args.smoke else ""),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "levels": mode.levels,
        "warmup_seconds": mode.warmup,
        "duration_seconds": mode.duration,
        "password_hash": {"algorithm": "argon2id", **mode.hash},
    }
    with workdir(args.keep) as scratch:
        bench = Bench(mode, scratch)
        try:
            bench.setup()
            meta["machine"]["postgres"] = postgres_version(bench)
            print(f"main run: levels {mode.levels}, {mode.warmup}s warm-up + {mode.duration}s", flush=True)
            bench.main_run()
            print("history run", flush=True)
            bench.history_run()
            print("scaling run", flush=True)
            bench.scaling_run()
        finally:
            bench.close()
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    document = {"meta": meta, **bench.results}
    document["targets"] = report.targets(document)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "latest.md").write_text(report.markdown(document))
    plotted = report.plot(document, args.out / "latest.png")
    print(report.markdown(document))
    print(f"wrote {args.out / 'latest.json'}, latest.md" + (", latest.png" if plotted else " (no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
