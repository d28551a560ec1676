"""The PNG plot of one run: rate and p99 against concurrency."""

from __future__ import annotations

from pathlib import Path

from bench.report import LABELS
from bench.results import RunReport

STYLES = {"service": "-", "reference": "-.", "baseline": "--"}


def plot(doc: RunReport, path: Path) -> bool:
    """Services solid, the lean reference dash-dotted, baselines dashed; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (rate_ax, p99_ax) = plt.subplots(1, 2, figsize=(13, 5))
    for name, workload in doc.workloads.items():
        levels = sorted(int(level) for level in workload.levels)
        rates = [workload.levels[str(level)].rate for level in levels]
        p99s = [workload.levels[str(level)].p99_ms or 0.0 for level in levels]
        style = STYLES.get(workload.kind, "-")
        rate_ax.plot(levels, rates, style, marker="o", label=LABELS.get(name, name))
        p99_ax.plot(levels, p99s, style, marker="o", label=LABELS.get(name, name))
    for ax, title, unit in ((rate_ax, "throughput", "calls per second"), (p99_ax, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("calls in flight")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    rate_ax.legend(fontsize=7)
    m = doc.meta.machine
    fig.suptitle(
        f"payments-grpc: services (solid), lean reference (dash-dot), baselines (dashed) — "
        f"{m.cores} cores, {m.cpu}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
