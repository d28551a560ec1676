"""The Markdown report of one run."""

from __future__ import annotations

from bench.phases import TX_WORKLOADS, reference_name
from bench.results import Measured, RunReport, Target

LABELS = {
    "echo": "echo (baseline)",
    "password_verify": "argon2 verify (baseline)",
    "pg_insert": "pgbench insert (baseline)",
    "create": "CreateTransaction",
    "get": "GetTransaction",
    "list": "ListTransactions (50)",
    "update": "UpdateTransactionStatus",
    "login": "Login",
    **{reference_name(w): f"lean reference: {w}" for w in TX_WORKLOADS},
}


def fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio_cell(m: Measured) -> str:
    if m.ratio is None:
        return "–"
    name = "verify" if m.ratio.baseline == "password_verify" else "reference"
    return f"{fmt(m.ratio.value, 2)} × {name} (of {fmt(m.ratio.baseline_rate)})"


def _header(doc: RunReport) -> list[str]:
    meta, m = doc.meta, doc.meta.machine
    hashed = meta.password_hash
    order = "reference, then service" if meta.rounds == 1 else f"{meta.rounds} pairs per point, R S S R order"
    return [
        f"### Benchmark ({meta.mode} mode, {meta.started_at})",
        "",
        f"`{meta.command}` on {m.cpu}, {m.cores} cores, {m.memory_gb} GB, {m.os}, Python {m.python}, "
        f"grpcio {m.grpcio}, PostgreSQL {m.postgres}; load average at start {m.load_average_at_start}. "
        f"Each point: {meta.warmup_seconds} s warm-up (not measured) + {meta.duration_seconds} s measured; "
        "load generator in its own process on the same machine. Each transaction call is measured "
        f"against the lean reference server (`bench/reference.py`) in the same run, interleaved ({order}); "
        "Login against the raw argon2 verify just "
        "before it; echo just before each pair, for information. Server CPU per call: CPU of the "
        "serving process in the measured window ÷ the calls that finished in it. "
        f"Password hash: argon2id t={hashed.time_cost}, m={hashed.memory_kib} KiB, "
        f"p={hashed.parallelism}. Total run time {meta.total_seconds} s.",
    ]


def _main_table(doc: RunReport) -> list[str]:
    lines = [
        "",
        "| workload | in flight | rate /s | p50 ms | p99 ms | errors | ratio | × echo (info) | "
        "server CPU (cores) | server CPU ms/call | server peak RSS MB | postgres CPU | client CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, workload in doc.workloads.items():
        for level, m in workload.levels.items():
            echo = f"{fmt(m.echo.value, 2)} (of {fmt(m.echo.baseline_rate)})" if m.echo else "–"
            cells = [
                LABELS.get(name, name),
                level,
                fmt(m.rate),
                fmt(m.p50_ms, 2),
                fmt(m.p99_ms, 2),
                str(m.errors),
                _ratio_cell(m),
                echo,
                fmt(m.server_cpu_cores, 2),
                fmt(m.cpu_ms_per_call, 2),
                fmt(m.peak_rss_mb),
                fmt(m.postgres_cpu_cores, 2),
                fmt(m.client_cpu_s, 1),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _reference_table(doc: RunReport) -> list[str]:
    lines = [
        "",
        "**Service ÷ lean reference** (same run, interleaved)",
        "",
        "| call | in flight | service /s | reference /s | ratio | p99 ms service / reference "
        "| CPU ms/call service / reference | service × echo (info) |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for name in TX_WORKLOADS:
        for level, svc in doc.workloads[name].levels.items():
            ref = doc.workloads[reference_name(name)].levels[level]
            lines.append(
                f"| {LABELS[name]} | {level} | {fmt(svc.rate)} | {fmt(ref.rate)} | "
                f"{fmt(svc.ratio.value if svc.ratio else None, 2)} | {fmt(svc.p99_ms, 2)} / "
                f"{fmt(ref.p99_ms, 2)} | {fmt(svc.cpu_ms_per_call, 2)} / {fmt(ref.cpu_ms_per_call, 2)} | "
                f"{fmt(svc.echo.value if svc.echo else None, 2)} |"
            )
    return lines


def _history_table(doc: RunReport) -> list[str]:
    history = doc.history
    if history is None:
        return []
    lines = [
        "",
        f"**History length** (rows of the calling user: {history.short_rows:,} vs {history.long_rows:,}; "
        f"seeded in {history.seed_seconds:.0f} s)",
        "",
        "| measurement | in flight | short: rate /s, p50 / p99 ms | long: rate /s, p50 / p99 ms "
        "| p50 ratio |",
        "|---|---:|---|---|---:|",
    ]

    def cell(m: Measured) -> str:
        return f"{fmt(m.rate)}, {fmt(m.p50_ms, 2)} / {fmt(m.p99_ms, 2)}"

    for h in history.lists:
        ratio_cell = fmt(h.p50_ratio, 2)
        lines.append(
            f"| ListTransactions first page | {h.level} | {cell(h.short)} | {cell(h.long)} | {ratio_cell} |"
        )
    main = doc.workloads["create"].levels[str(history.create_level)]
    lines.append(
        f"| CreateTransaction, table of {history.table_rows_before:,}+ rows vs main run | "
        f"{history.create_level} | {cell(main)} | {cell(history.create_large)} | "
        f"{fmt(history.create_p50_ratio, 2)} |"
    )
    return lines


def _scaling_table(doc: RunReport) -> list[str]:
    if not doc.scaling:
        return []
    lines = [
        "",
        "**Scaling** (2 processes per service, each on its own port, channels spread over both, vs 1)",
        "",
        "| workload | in flight | 1 process /s | 2 processes /s | ratio | p99 ms (1 → 2) | errors (2) "
        "| peak RSS per process MB (2) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for s in doc.scaling:
        lines.append(
            f"| {LABELS.get(s.workload, s.workload)} | {s.level} | {fmt(s.one.rate)} | {fmt(s.two.rate)} | "
            f"{fmt(s.rate_ratio, 2)} | {fmt(s.one.p99_ms, 2)} → {fmt(s.two.p99_ms, 2)} | {s.two.errors} | "
            f"{fmt(s.two.peak_rss_mb)} |"
        )
    return lines


def targets_table(title: str, targets: list[Target]) -> list[str]:
    lines = ["", f"**{title}**", "", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "–"}[t.met]
        lines.append(f"| {t.target} | {t.goal} | {fmt(t.measured, 2)} | {met} |")
    return lines


def markdown(doc: RunReport) -> str:
    """The report as Markdown tables."""
    lines = _header(doc) + _main_table(doc) + _reference_table(doc) + _history_table(doc)
    lines += _scaling_table(doc)
    level = doc.meta.target_level
    lines += targets_table(f"Targets: service ÷ lean reference ({level} in flight, same run)", doc.targets)
    lines += targets_table("Other targets", doc.other_targets)
    return "\n".join(lines) + "\n"
