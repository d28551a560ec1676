"""Targets, the Markdown table and the PNG plot of one run's JSON document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RSS_LIMIT_MB = 150.0
SCALED = {"echo": "echo", "create": "tx", "get": "tx", "list": "tx", "update": "tx", "login": "auth"}
LABELS = {
    "echo": "echo (baseline)",
    "password_verify": "argon2 verify (baseline)",
    "pg_insert": "pgbench insert (baseline)",
    "create": "CreateTransaction",
    "get": "GetTransaction",
    "list": "ListTransactions (50)",
    "update": "UpdateTransactionStatus",
    "login": "Login",
}


def _level(doc: dict[str, Any]) -> str:
    levels = doc["meta"]["levels"]
    return str(16 if 16 in levels else levels[-1])


def _at(doc: dict[str, Any], workload: str, level: str) -> dict[str, Any]:
    result: dict[str, Any] = doc["workloads"][workload]["levels"][level]
    return result


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5 with its measured value and whether it was met."""
    level = _level(doc)
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, measured: float | None, met: bool | None) -> None:
        out.append({"target": name, "goal": goal, "measured": measured, "met": met})

    for workload, floor in (("create", 0.60), ("get", 0.75), ("list", 0.50)):
        ratio = _at(doc, workload, level).get("ratio_to_echo")
        add(
            f"{workload} rate / echo rate @{level}",
            f">= {floor:.2f}",
            ratio,
            None if ratio is None else ratio >= floor,
        )
    for workload in ("create", "get"):
        p99 = _at(doc, workload, level).get("p99_ms")
        add(f"{workload} p99 @{level} (ms)", "<= 20", p99, None if p99 is None else p99 <= 20)
    history = doc.get("history", {})
    page = history.get("list@1", {}).get("p50_ratio")
    add("list p50 long / short history @1", "<= 1.20", page, None if page is None else page <= 1.2)
    login = _at(doc, "login", level).get("ratio_to_password_verify")
    add(
        f"login rate / raw argon2 verify rate @{level}",
        ">= 0.90",
        login,
        None if login is None else login >= 0.9,
    )
    for service in ("auth", "tx"):
        peak = peak_rss(doc, service)
        add(
            f"peak RSS {service}, 1 process (MB)",
            f"<= {RSS_LIMIT_MB:.0f}",
            peak,
            None if peak is None else peak <= RSS_LIMIT_MB,
        )
    return out


def _points(doc: dict[str, Any]) -> list[dict[str, Any]]:
    points = [r for w in doc.get("workloads", {}).values() for r in w["levels"].values()]
    history = doc.get("history", {})
    for key, value in history.items():
        if key.startswith("list@"):
            points += [value["short"], value["long"]]
    if "create_large_table" in history:
        points.append(history["create_large_table"]["large"])
    return points  # the scaling run's 2-process points are reported in their own table


def peak_rss(doc: dict[str, Any], service: str) -> float | None:
    """The highest RSS of the `service` process over every run of the standard configuration
    (one process per service); the 2-process scaling run shows its own peaks."""
    peaks = [
        p["resources"][service]["peak_rss_mb"] for p in _points(doc) if service in p.get("resources", {})
    ]
    return max(peaks) if peaks else None


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    meta = doc["meta"]
    m = meta["machine"]
    lines = [
        f"### Benchmark ({meta['mode']} mode, {meta['started_at']})",
        "",
        f"`{meta['command']}` on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}, grpcio {m['grpcio']}, PostgreSQL {m.get('postgres', '?')}; "
        f"load average at start {m['load_average_at_start']}. Each point: {meta['warmup_seconds']} s "
        f"warm-up (not measured) + {meta['duration_seconds']} s measured; load generator in its own "
        "process on the same machine. Each service point's ratio is to its baseline measured just "
        'before it (echo; raw argon2 verify for Login), shown as "(of rate)". '
        f"Password hash: argon2id t={meta['password_hash']['time_cost']}, "
        f"m={meta['password_hash']['memory_kib']} KiB, p={meta['password_hash']['parallelism']}. "
        f"Total run time {meta.get('total_seconds', '?')} s.",
        "",
        "| workload | in flight | rate /s | p50 ms | p99 ms | errors | × echo | server CPU (cores) | "
        "server CPU ms/call | server peak RSS MB | postgres CPU | client CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, workload in doc["workloads"].items():
        service = workload["service"]
        for level, r in workload["levels"].items():
            res = r.get("resources", {})
            cpu = res.get(service, {}).get("cpu_cores") if service else None
            rss = res.get(service, {}).get("peak_rss_mb") if service else None
            paired = _fmt(r.get("paired_baseline_rate"))
            if name == "login":
                ratio_text = f"× verify {_fmt(r.get('ratio_to_password_verify'), 2)} (of {paired})"
            elif r.get("ratio_to_echo") is not None:
                ratio_text = f"{_fmt(r.get('ratio_to_echo'), 2)} (of {paired})"
            else:
                ratio_text = "–"
            cells = [
                LABELS.get(name, name),
                level,
                _fmt(r.get("rate")),
                _fmt(r.get("p50_ms"), 2),
                _fmt(r.get("p99_ms"), 2),
                str(r.get("errors", "–")),
                ratio_text,
                _fmt(cpu, 2),
                _fmt(cpu / r["rate"] * 1000 if cpu and r.get("rate") else None, 2),
                _fmt(rss),
                _fmt(res.get("postgres", {}).get("cpu_cores"), 2),
                _fmt(r.get("client_cpu_s"), 1),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    history = doc.get("history")
    if history:
        rows = history["rows"]
        lines += [
            "",
            f"**History length** (rows of the calling user: {rows['short']:,} vs {rows['long']:,}; "
            f"seeded in {history['seed_seconds']:.0f} s)",
            "",
            "| measurement | in flight | short: rate /s, p50 / p99 ms | long: rate /s, p50 / p99 ms "
            "| p50 ratio |",
            "|---|---:|---|---|---:|",
        ]
        for key, value in history.items():
            if key.startswith("list@"):
                s, g = value["short"], value["long"]
                short = f"{_fmt(s['rate'])}, {_fmt(s['p50_ms'], 2)} / {_fmt(s['p99_ms'], 2)}"
                long = f"{_fmt(g['rate'])}, {_fmt(g['p50_ms'], 2)} / {_fmt(g['p99_ms'], 2)}"
                ratio_cell = _fmt(value["p50_ratio"], 2)
                lines.append(f"| ListTransactions first page | {key[5:]} | {short} | {long} | {ratio_cell} |")
        create = history.get("create_large_table")
        if create:
            main = doc["workloads"]["create"]["levels"][str(create["level"])]
            large = create["large"]
            lines.append(
                f"| CreateTransaction, table of {create['table_rows_before']:,}+ rows vs main run | "
                f"{create['level']} | {_fmt(main['rate'])}, {_fmt(main['p50_ms'], 2)} / "
                f"{_fmt(main['p99_ms'], 2)} | "
                f"{_fmt(large['rate'])}, {_fmt(large['p50_ms'], 2)} / {_fmt(large['p99_ms'], 2)} | "
                f"{_fmt(create['p50_ratio_to_main_run'], 2)} |"
            )
    scaling = doc.get("scaling")
    if scaling:
        lines += [
            "",
            "**Scaling** (2 processes per service on one port with SO_REUSEPORT vs 1)",
            "",
            "| workload | in flight | 1 process /s | 2 processes /s | ratio | p99 ms (1 → 2) | errors (2) "
            "| peak RSS per process MB (2) |",
            "|---|---:|---:|---:|---:|---|---:|---:|",
        ]
        for key, value in scaling.items():
            name, level = key.split("@")
            one, two = value["one_process"], value["two_processes"]
            rss = two.get("resources", {}).get(SCALED[name], {}).get("peak_rss_mb")
            lines.append(
                f"| {LABELS.get(name, name)} | {level} | {_fmt(one['rate'])} | {_fmt(two['rate'])} | "
                f"{_fmt(value['rate_ratio'], 2)} | {_fmt(one['p99_ms'], 2)} → {_fmt(two['p99_ms'], 2)} | "
                f"{two['errors']} | {_fmt(rss)} |"
            )
    lines += ["", "**Targets**", "", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for t in doc.get("targets", []):
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['target']} | {t['goal']} | {_fmt(t['measured'], 2)} | {met} |")
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> bool:
    """Rate and p99 against concurrency, services solid and baselines dashed; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (rate_ax, p99_ax) = plt.subplots(1, 2, figsize=(13, 5))
    for name, workload in doc["workloads"].items():
        levels = sorted(int(level) for level in workload["levels"])
        rates = [workload["levels"][str(level)].get("rate") or 0 for level in levels]
        p99s = [workload["levels"][str(level)].get("p99_ms") for level in levels]
        style = "--" if workload["kind"] == "baseline" else "-"
        rate_ax.plot(levels, rates, style, marker="o", label=LABELS.get(name, name))
        p99_ax.plot(levels, p99s, style, marker="o", label=LABELS.get(name, name))
    for ax, title, unit in ((rate_ax, "throughput", "calls per second"), (p99_ax, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("calls in flight")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    p99_ax.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    rate_ax.legend(fontsize=8)
    m = doc["meta"]["machine"]
    fig.suptitle(f"payments-grpc: services (solid) vs baselines (dashed) — {m['cores']} cores, {m['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
