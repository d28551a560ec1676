"""The phases of a run: the main run, the history-length run and the scaling run."""

from __future__ import annotations

import time

from bench.database import analyze, seed_transactions
from bench.harness import Bench
from bench.results import History, HistoryList, Measured, Point, Scaled, Workload, ratio

TX_WORKLOADS = ("create", "get", "list", "update")  # each measured against the lean reference


def reference_name(workload: str) -> str:
    return f"{workload}_reference"


def compared(bench: Bench, workload: str, level: int) -> tuple[Measured, Measured]:
    """The reference and the service, interleaved R S S R ... (`mode.rounds` pairs), echo just before.

    The ABBA order cancels a linear drift of the machine across a pair; each ratio and CPU per
    call pools the rounds of the same run.
    """
    echo = bench.point("echo", level).window.rate
    rounds: dict[str, list[Point]] = {"ref": [], "tx": []}
    for index in range(bench.mode.rounds):
        for server in ("ref", "tx") if index % 2 == 0 else ("tx", "ref"):
            rounds[server].append(bench.point(workload, level, server=bench.server(server)))
    reference = Measured.of(rounds["ref"])
    service = Measured.of(rounds["tx"], ratio_to=reference, baseline=reference_name(workload))
    return reference.with_echo(echo), service.with_echo(echo)


def main_run(bench: Bench) -> dict[str, Workload]:
    """Every workload at every level. Each service point is paired with its baseline measured in
    the same run: the lean reference (interleaved) for the transaction calls, raw verify for
    Login; echo is measured just before each pair, for information."""
    levels = bench.mode.levels
    workloads = {"echo": Workload("baseline", "echo")}
    for level in levels:
        workloads["echo"].levels[str(level)] = Measured.of([bench.point("echo", level)])
    for workload in TX_WORKLOADS:
        service = workloads[workload] = Workload("service", "tx")
        reference = workloads[reference_name(workload)] = Workload("reference", "ref")
        for level in levels:
            reference.levels[str(level)], service.levels[str(level)] = compared(bench, workload, level)
    login = workloads["login"] = Workload("service", "auth")
    verify = workloads["password_verify"] = Workload("baseline", None)
    for level in levels:
        base = verify.levels[str(level)] = Measured.of([bench.point("password_verify", level)])
        login.levels[str(level)] = Measured.of(
            [bench.point("login", level)], ratio_to=base, baseline="password_verify"
        )
    workloads["pg_insert"] = Workload(
        "baseline", None, {str(level): Measured.of([bench.point("pg_insert", level)]) for level in levels}
    )
    return workloads


def history_run(bench: Bench, workloads: dict[str, Workload]) -> History:
    """List page time with a short vs a long history; create latency once the table is large."""
    database, _ = bench.system()
    small_rows, big_rows = bench.mode.history_rows
    small, big = bench.register(2, "history")
    engine = database.engine()
    started = time.perf_counter()
    seed_transactions(engine, small.id, small_rows, returning=False)
    seed_transactions(engine, big.id, big_rows, returning=False)
    analyze(engine)
    seeded = time.perf_counter() - started
    engine.dispose()
    print(f"history: seeded {small_rows} + {big_rows} rows in {seeded:.1f}s", flush=True)
    lists = []
    for level in bench.mode.history_levels:
        short = Measured.of([bench.point("list", level, [small])])
        long = Measured.of([bench.point("list", level, [big])])
        lists.append(HistoryList(level, short, long, ratio(long.p50_ms, short.p50_ms)))
    level = bench.mode.target_level
    large = Measured.of([bench.point("create", level, [big])])
    main = workloads["create"].levels[str(level)]
    return History(
        short_rows=small_rows,
        long_rows=big_rows,
        seed_seconds=round(seeded, 1),
        lists=lists,
        create_level=level,
        table_rows_before=big_rows + small_rows,
        create_large=large,
        create_p50_ratio=ratio(large.p50_ms, main.p50_ms),
    )


def scaling_run(bench: Bench, workloads: dict[str, Workload]) -> list[Scaled]:
    """The same workloads with 2 processes per service, the load generator's channels spread over both."""
    _, services = bench.system()
    services.stop()
    services.start(processes=2)
    scaled = []
    for workload in bench.mode.scaling_workloads:
        for level in bench.mode.scaling_levels:
            one = workloads[workload].levels[str(level)]
            two = Measured.of([bench.point(workload, level)])
            scaled.append(Scaled(workload, level, one, two, ratio(two.rate, one.rate)))
    return scaled
