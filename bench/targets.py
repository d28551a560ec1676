"""The targets of a run, each with its measured value and whether it was met."""

from __future__ import annotations

from dataclasses import dataclass

from bench.phases import reference_name
from bench.results import History, Measured, Target, Workload, ratio

RSS_LIMIT_MB = 150.0
P99_LIMIT = 1.5  # service p99 <= this x the reference's p99


@dataclass(frozen=True)
class ReferenceGoal:
    """Service ÷ lean reference at the target level (16 in flight), and CPU per call."""

    workload: str
    label: str
    min_ratio: float
    max_cpu_ms: float | None


REFERENCE_GOALS = (
    ReferenceGoal("get", "GetTransaction", 0.90, 1.0),
    ReferenceGoal("create", "CreateTransaction", 0.90, 1.2),
    ReferenceGoal("update", "UpdateTransactionStatus", 0.90, None),
    ReferenceGoal("list", "ListTransactions (50)", 0.80, 2.5),
)


def _target(name: str, goal: str, measured: float | None, met: bool | None) -> Target:
    return Target(name, goal, measured, met)


def _at_least(name: str, floor: float, measured: float | None) -> Target:
    return _target(name, f">= {floor:.2f}", measured, None if measured is None else measured >= floor)


def _at_most(name: str, ceiling: float, measured: float | None, digits: int = 2) -> Target:
    goal = f"<= {ceiling:.{digits}f}"
    return _target(name, goal, measured, None if measured is None else measured <= ceiling)


def reference_targets(workloads: dict[str, Workload], level: int) -> list[Target]:
    """The targets of issue 10: every service call against the lean reference of the same run."""
    out: list[Target] = []
    for goal in REFERENCE_GOALS:
        service = workloads[goal.workload].levels[str(level)]
        reference = workloads[reference_name(goal.workload)].levels[str(level)]
        value = service.ratio.value if service.ratio is not None else None
        out.append(_at_least(f"{goal.label} service ÷ lean reference @{level}", goal.min_ratio, value))
        if goal.max_cpu_ms is not None:
            out.append(
                _at_most(
                    f"{goal.label} server CPU ms/call @{level}", goal.max_cpu_ms, service.cpu_ms_per_call, 1
                )
            )
    for goal in REFERENCE_GOALS:
        service = workloads[goal.workload].levels[str(level)]
        reference = workloads[reference_name(goal.workload)].levels[str(level)]
        p99 = ratio(service.p99_ms, reference.p99_ms)
        out.append(_at_most(f"{goal.label} p99 ÷ reference p99 @{level}", P99_LIMIT, p99))
    return out


def peak_rss(measured: list[Measured], server: str) -> float | None:
    """The highest RSS of one server group over the given points (one process per service)."""
    peaks = [p for p in (m.peak_rss(server) for m in measured) if p is not None]
    return max(peaks) if peaks else None


def other_targets(workloads: dict[str, Workload], history: History | None, level: int) -> list[Target]:
    """The targets kept from issue 5: history length, Login vs raw verify, peak RSS."""
    out: list[Target] = []
    page = next((h.p50_ratio for h in history.lists if h.level == 1), None) if history else None
    out.append(_at_most("list p50 long / short history @1", 1.2, page))
    login = workloads["login"].levels[str(level)].ratio
    out.append(
        _at_least(f"login rate / raw argon2 verify rate @{level}", 0.9, login.value if login else None)
    )
    points = [m for w in workloads.values() for m in w.levels.values()]
    if history is not None:
        points += [m for h in history.lists for m in (h.short, h.long)] + [history.create_large]
    for server in ("auth", "tx"):
        out.append(_at_most(f"peak RSS {server}, 1 process (MB)", RSS_LIMIT_MB, peak_rss(points, server), 0))
    return out
