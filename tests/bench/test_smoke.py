"""The benchmark suite keeps working: its smoke mode runs end to end (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TX_WORKLOADS = ["create", "get", "list", "update"]  # each measured against the lean reference
REFERENCE = [f"{name}_reference" for name in TX_WORKLOADS]
WORKLOADS = ["echo", *TX_WORKLOADS, *REFERENCE, "login", "password_verify", "pg_insert"]
LABELS = ["GetTransaction", "CreateTransaction", "UpdateTransactionStatus", "ListTransactions (50)"]


def run_bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE --smoke ARGS`, which must succeed."""
    argv = [sys.executable, "-m", module, "--smoke", *args]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_smoke_benchmark_measures_every_workload_and_the_reference_without_errors(tmp_path: Path) -> None:
    run_bench("bench", "--out", str(tmp_path))
    report = json.loads((tmp_path / "latest.json").read_text())
    workloads = report["workloads"]
    assert sorted(workloads) == sorted(WORKLOADS)
    for name, workload in workloads.items():
        for level, result in workload["levels"].items():
            assert result["rate"] > 0, f"{name}@{level}: {result}"
            assert result["errors"] == 0, f"{name}@{level}: {result}"
    assert {workloads[name]["kind"] for name in REFERENCE} == {"reference"}
    for name in TX_WORKLOADS:  # each ratio is to the reference of the same run, with CPU for both
        for level, result in workloads[name]["levels"].items():
            reference = workloads[f"{name}_reference"]["levels"][level]
            ratio = result["ratio"]
            assert ratio["baseline"] == f"{name}_reference", f"{name}@{level}"
            assert ratio["baseline_rate"] == reference["rate"] > 0, f"{name}@{level}"
            assert ratio["value"] == round(result["rate"] / reference["rate"], 3), f"{name}@{level}"
            assert result["cpu_ms_per_call"] > 0 and reference["cpu_ms_per_call"] > 0, f"{name}@{level}"
            assert result["echo"]["baseline_rate"] > 0, f"{name}@{level}"  # kept for information
    for level, result in workloads["login"]["levels"].items():
        ratio = result["ratio"]
        assert ratio["baseline"] == "password_verify"
        assert ratio["value"] == round(result["rate"] / ratio["baseline_rate"], 3), f"login@{level}"
    history = report["history"]
    for page in history["lists"]:
        assert page["short"]["rate"] > 0 and page["long"]["rate"] > 0
        assert page["short"]["errors"] == 0 and page["long"]["errors"] == 0
    assert history["create_large"]["rate"] > 0 and history["create_large"]["errors"] == 0
    for scaled in report["scaling"]:
        assert scaled["two"]["rate"] > 0 and scaled["two"]["errors"] == 0, scaled["workload"]
    names = [t["target"] for t in report["targets"]]
    for label in LABELS:  # every reference target is reported (met or not)
        assert any(n.startswith(f"{label} service ÷ lean reference") for n in names), label
        assert any(n.startswith(f"{label} p99 ÷ reference p99") for n in names), label
    assert report["other_targets"]
    text = (tmp_path / "latest.md").read_text()
    assert text.startswith("### Benchmark")
    assert "**Service ÷ lean reference**" in text and "lean reference: get" in text


def test_the_decomposition_serves_get_from_every_layer_without_errors(tmp_path: Path) -> None:
    done = run_bench("bench.decompose", "--repeat", "1", "--out", str(tmp_path))
    result = json.loads((tmp_path / "decompose.json").read_text())
    assert set(result["rates"]) == {"echo", "proto", "stack", "stack-quiet", "reference", "service"}
    assert all(len(rates) == 1 and rates[0] > 0 for rates in result["rates"].values()), result
    assert result["ratio_to_echo"]["echo"] == 1.0
    assert result["ratio_to_reference"]["reference"] == 1.0
    assert "| stack-quiet |" in done.stdout


def test_the_processing_benchmark_charges_through_the_sandbox_at_both_latencies(tmp_path: Path) -> None:
    done = run_bench("bench.processing", "--out", str(tmp_path))
    points = json.loads((tmp_path / "processing.json").read_text())
    assert [p["latency_ms"] for p in points] == [0, 50]
    assert all(p["processed_per_second"] > 0 and p["plain_creates_per_second"] > 0 for p in points), points
    # each payment's completion came after its creation, through the worker and the sandbox
    assert all(0 < p["completion_p50_ms"] <= p["completion_p99_ms"] for p in points), points
    assert "| 50 ms |" in done.stdout
