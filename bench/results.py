"""Typed results of a run: one measured window, a point at one level, and the run's document.

Every figure the report prints is a field here; `latest.json` is `dataclasses.asdict` of a
`RunReport`.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field, replace

from bench.modes import HashParams


@dataclass(frozen=True)
class Window:
    """What the load generator measured: calls that finished inside the window after the warm-up."""

    count: int
    seconds: float
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    errors: int
    error_codes: dict[str, int]
    client_cpu_s: float | None = None
    pending_left: list[int] = field(default_factory=list)  # update: unspent PENDING ids per user
    skipped: str | None = None

    @classmethod
    def from_json(cls, text: str) -> Window:
        """The load generator's last line."""
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Usage:
    """One group of server processes during the window (CPU) and the whole point (peak RSS)."""

    cpu_seconds: float
    cpu_cores: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Point:
    """One window of one workload at one concurrency, with the resources the servers used."""

    workload: str
    server: str | None  # the process group that served it; None for baselines without one
    concurrency: int
    window: Window
    usage: dict[str, Usage]
    postgres_cpu_cores: float | None

    @property
    def served(self) -> Usage | None:
        return self.usage.get(self.server) if self.server else None


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.fmean(known), 3) if known else None


@dataclass(frozen=True)
class Ratio:
    """A rate divided by its baseline's rate, measured in the same run."""

    baseline: str  # the baseline workload ("get_reference", "echo", "password_verify")
    baseline_rate: float
    value: float | None

    @classmethod
    def of(cls, rate: float, baseline: str, baseline_rate: float) -> Ratio:
        return cls(baseline, baseline_rate, round(rate / baseline_rate, 3) if baseline_rate else None)


@dataclass(frozen=True)
class Measured:
    """One workload at one level: its rounds pooled (rate and CPU over all calls; mean percentiles)."""

    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    cpu_ms_per_call: float | None
    server_cpu_cores: float | None
    peak_rss_mb: float | None
    postgres_cpu_cores: float | None
    client_cpu_s: float | None
    rounds: list[Point]
    ratio: Ratio | None = None  # to the baseline it is paired with
    echo: Ratio | None = None  # information: to the echo server measured just before

    @classmethod
    def of(cls, rounds: list[Point], ratio_to: Measured | None = None, baseline: str = "") -> Measured:
        calls = sum(p.window.count for p in rounds)
        seconds = sum(p.window.seconds for p in rounds)
        rate = round(calls / seconds, 1) if seconds else 0.0
        served = [p.served for p in rounds if p.served is not None]
        cpu = sum(u.cpu_seconds for u in served)
        return cls(
            rate=rate,
            p50_ms=_mean([p.window.p50_ms for p in rounds]),
            p99_ms=_mean([p.window.p99_ms for p in rounds]),
            errors=sum(p.window.errors for p in rounds),
            cpu_ms_per_call=round(cpu / calls * 1000, 3) if served and calls else None,
            server_cpu_cores=_mean([u.cpu_cores for u in served]),
            peak_rss_mb=max((u.peak_rss_mb for u in served), default=None),
            postgres_cpu_cores=_mean([p.postgres_cpu_cores for p in rounds]),
            client_cpu_s=_mean([p.window.client_cpu_s for p in rounds]),
            rounds=rounds,
            ratio=Ratio.of(rate, baseline, ratio_to.rate) if ratio_to is not None else None,
        )

    def with_echo(self, echo_rate: float) -> Measured:
        return replace(self, echo=Ratio.of(self.rate, "echo", echo_rate))

    def peak_rss(self, server: str) -> float | None:
        peaks = [p.usage[server].peak_rss_mb for p in self.rounds if server in p.usage]
        return max(peaks) if peaks else None


@dataclass
class Workload:
    """Every level of one workload; `kind` is service, reference or baseline."""

    kind: str
    server: str | None
    levels: dict[str, Measured] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryList:
    level: int
    short: Measured
    long: Measured
    p50_ratio: float | None


@dataclass(frozen=True)
class History:
    """List with a short vs a long history of the caller; create once the table is large."""

    short_rows: int
    long_rows: int
    seed_seconds: float
    lists: list[HistoryList]
    create_level: int
    table_rows_before: int
    create_large: Measured
    create_p50_ratio: float | None


@dataclass(frozen=True)
class Scaled:
    """One workload at one level with 2 processes per service vs 1."""

    workload: str
    level: int
    one: Measured
    two: Measured
    rate_ratio: float | None


@dataclass(frozen=True)
class Target:
    target: str
    goal: str
    measured: float | None
    met: bool | None


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gb: float
    os: str
    python: str
    grpcio: str
    postgres: str
    load_average_at_start: list[float]


@dataclass(frozen=True)
class Meta:
    mode: str
    command: str
    started_at: str
    machine: Machine
    levels: list[int]
    target_level: int
    rounds: int
    warmup_seconds: float
    duration_seconds: float
    password_hash: HashParams
    total_seconds: float


@dataclass
class RunReport:
    meta: Meta
    workloads: dict[str, Workload]
    history: History | None
    scaling: list[Scaled]
    targets: list[Target]  # service ÷ lean reference
    other_targets: list[Target]


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b to 3 decimals, or None when either is unknown (or b is 0)."""
    return round(a / b, 3) if a is not None and b else None
