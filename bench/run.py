"""Orchestrates one benchmark run: `python -m bench [--smoke] [--out DIR] [--keep DIR]`.

1. embedded PostgreSQL (or BENCH_DATABASE_URL), migrations, echo + auth + transaction servers and
   the lean reference (`bench/reference.py`) as separate processes, users seeded through the real
   AuthService, rows seeded by SQL;
2. every workload and baseline at each concurrency level, each in a fresh load-generator process,
   with CPU and peak RSS of every server process (and PostgreSQL) sampled during the run; each
   transaction call interleaved with the same call on the lean reference;
3. the history-length run (list with 1 k vs 1 M rows for the caller; create on the large table);
4. the scaling run (2 processes per service, the load spread over both, vs 1);
5. latest.json, latest.md and latest.png in the output folder (bench/results by default).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import ROOT, phases, plot, report, targets
from bench.harness import Bench, workdir
from bench.modes import FULL, SMOKE, Mode
from bench.results import Machine, Meta, RunReport


def machine(postgres: str, load_average: list[float]) -> Machine:
    """What the numbers were measured on."""
    import grpc
    import psutil

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return Machine(
        cpu=cpu,
        cores=os.cpu_count() or 0,
        memory_gb=round(float(psutil.virtual_memory().total) / 2**30, 1),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        grpcio=grpc.__version__,
        postgres=postgres,
        load_average_at_start=load_average,
    )


def measure(mode: Mode, scratch: Path, command: str) -> RunReport:
    """Set up, run every phase, tear down; the document of the run."""
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = [round(x, 2) for x in os.getloadavg()]
    bench = Bench(mode, scratch)
    try:
        bench.setup()
        database, _ = bench.system()
        postgres = database.server_version()
        print(f"main run: levels {list(mode.levels)}, {mode.warmup}s warm-up + {mode.duration}s", flush=True)
        workloads = phases.main_run(bench)
        print("history run", flush=True)
        history = phases.history_run(bench, workloads)
        print("scaling run", flush=True)
        scaling = phases.scaling_run(bench, workloads)
    finally:
        bench.close()
    level = mode.target_level
    meta = Meta(
        mode=mode.name,
        command=command,
        started_at=started_at,
        machine=machine(postgres, load),
        levels=list(mode.levels),
        target_level=level,
        rounds=mode.rounds,
        warmup_seconds=mode.warmup,
        duration_seconds=mode.duration,
        password_hash=mode.hash,
        total_seconds=round(time.perf_counter() - started, 1),
    )
    return RunReport(
        meta=meta,
        workloads=workloads,
        history=history,
        scaling=scaling,
        targets=targets.reference_targets(workloads, level),
        other_targets=targets.other_targets(workloads, history, level),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds of everything (CI)")
    parser.add_argument(
        "--out", type=Path, help="report folder (default bench/results; smoke: .data/bench-smoke)"
    )
    parser.add_argument("--keep", type=Path, help="keep logs and the database folder here")
    args = parser.parse_args(argv)
    mode = SMOKE if args.smoke else FULL
    default_out = ROOT / ".data" / "bench-smoke" if args.smoke else ROOT / "bench" / "results"
    out: Path = args.out or default_out  # a smoke run never overwrites the published results
    with workdir(args.keep) as scratch:
        document = measure(mode, scratch, "python -m bench" + (" --smoke" if args.smoke else ""))
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(asdict(document), indent=2) + "\n")
    text = report.markdown(document)
    (out / "latest.md").write_text(text)
    plotted = plot.plot(document, out / "latest.png")
    print(text)
    print(f"wrote {out / 'latest.json'}, latest.md" + (", latest.png" if plotted else " (no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
