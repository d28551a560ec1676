"""The benchmark suite keeps working: its smoke mode runs end to end (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

WORKLOADS = ["echo", "create", "get", "list", "update", "login", "password_verify", "pg_insert"]


def run_bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE --smoke ARGS`, which must succeed."""
    argv = [sys.executable, "-m", module, "--smoke", *args]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_smoke_benchmark_measures_every_workload_without_errors(tmp_path: Path) -> None:
    run_bench("bench", "--out", str(tmp_path))
    report = json.loads((tmp_path / "latest.json").read_text())
    assert sorted(report["workloads"]) == sorted(WORKLOADS)
    for name, workload in report["workloads"].items():
        for level, result in workload["levels"].items():
            assert result["rate"] > 0, f"{name}@{level}: {result}"
            assert result["errors"] == 0, f"{name}@{level}: {result}"
    for name in ("create", "get", "list", "update", "login"):  # each ratio is to a baseline run just before
        key = "ratio_to_password_verify" if name == "login" else "ratio_to_echo"
        for level, result in report["workloads"][name]["levels"].items():
            paired = result["paired_baseline_rate"]
            assert paired > 0 and result[key] == round(result["rate"] / paired, 3), f"{name}@{level}"
    history = report["history"]
    for key, value in history.items():
        if key.startswith("list@"):
            assert value["short"]["rate"] > 0 and value["long"]["rate"] > 0
            assert value["short"]["errors"] == 0 and value["long"]["errors"] == 0
    assert history["create_large_table"]["large"]["rate"] > 0
    assert history["create_large_table"]["large"]["errors"] == 0
    for key, value in report["scaling"].items():
        assert value["two_processes"]["rate"] > 0, key
        assert value["two_processes"]["errors"] == 0, key
    assert {t["target"] for t in report["targets"]}  # every target is reported (met or not)
    assert (tmp_path / "latest.md").read_text().startswith("### Benchmark")


def test_the_decomposition_serves_get_from_every_layer_without_errors(tmp_path: Path) -> None:
    done = run_bench("bench.decompose", "--repeat", "1", "--out", str(tmp_path))
    result = json.loads((tmp_path / "decompose.json").read_text())
    assert set(result["rates"]) == {"echo", "proto", "stack", "stack-quiet", "service"}
    assert all(len(rates) == 1 and rates[0] > 0 for rates in result["rates"].values()), result
    assert result["ratio_to_echo"]["echo"] == 1.0
    assert "| stack-quiet |" in done.stdout
