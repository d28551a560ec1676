"""Profile a server under one workload: `python -m bench.profile WORKLOAD [--concurrency N] [--seconds S]`.

Starts the same system as the benchmark, drives WORKLOAD, and samples the server process with
py-spy (`pip install -e '.[bench]'`). Writes the collapsed stacks and a summary of the hottest
functions (self and inclusive, % of samples) to bench/results/profile-WORKLOAD.txt.
With --idle, threads waiting on I/O (database round trips, locks) are sampled too; with
--reference the lean reference server (`bench/reference.py`) is profiled instead of the service.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from bench import ROOT
from bench.harness import SERVER_OF, Bench, workdir
from bench.modes import FULL
from bench.results import Point


def summarise(raw: str, top: int = 40) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] if " (" in f else f for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"samples: {total}", "", "self %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in own.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("workload", choices=["create", "get", "list", "update", "login", "echo"])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", action="store_true", help="also sample threads that wait")
    parser.add_argument("--gil", action="store_true", help="only sample the thread holding the GIL")
    parser.add_argument("--reference", action="store_true", help="profile the lean reference server")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    mode = replace(FULL, warmup=1.0, duration=args.seconds + 1.0, users=4, pending_per_user=8000)
    with workdir() as scratch:
        bench = Bench(mode, scratch)
        try:
            bench.setup()
            name = "ref" if args.reference else SERVER_OF[args.workload]
            if name is None or (args.reference and args.workload in ("login", "echo")):
                raise SystemExit(f"{args.workload} has no server to profile here")
            server = bench.server(name)
            pid = server.pids[0]
            raw = scratch / "profile.raw"
            command = [
                pyspy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(args.seconds)),
                "--rate",
                "250",
            ]
            command += ["--format", "raw", "--output", str(raw), "--nonblocking"]
            if args.idle:
                command.append("--idle")
            if args.gil:
                command.append("--gil")
            results: list[Point] = []
            load = threading.Thread(
                target=lambda: results.append(bench.point(args.workload, args.concurrency, server=server)),
                daemon=True,
            )
            load.start()
            threading.Event().wait(mode.warmup)
            subprocess.run(command, check=True, capture_output=True)
            load.join()
            args.out.mkdir(parents=True, exist_ok=True)
            target = (
                args.out / f"profile-{'reference-' if args.reference else ''}{args.workload}"
                f"{'-idle' if args.idle else ''}{'-gil' if args.gil else ''}.txt"
            )
            window = results[0].window
            summary = {
                "rate": window.rate,
                "p50_ms": window.p50_ms,
                "p99_ms": window.p99_ms,
                "errors": window.errors,
            }
            header = f"{args.workload} @{args.concurrency}: {json.dumps(summary)}\n"
            target.write_text(header + summarise(raw.read_text()))
            print(target.read_text()[:6000])
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
