"""CPU and peak RSS of each group of server processes (and of PostgreSQL) while a point runs.

CPU is counted between `window_started()` and `window_ended()`, which the orchestrator calls when
the load generator reports the edges of its measured window, so CPU per call divides the CPU of
exactly the window by the calls that finished in it. Without those marks (pgbench) the whole
point is the window. Peak RSS is sampled every `interval` over the whole point.
"""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

from bench.results import Usage

CpuTimes = dict[int, float]  # pid -> user + system seconds


def _cpu(procs: list[psutil.Process]) -> CpuTimes:
    out: CpuTimes = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[int(proc.pid)] = float(times.user) + float(times.system)
    return out


def _used(start: CpuTimes, end: CpuTimes) -> float:
    return sum(value - start.get(pid, 0.0) for pid, value in end.items())


class Monitor:
    """Use as a context manager around one point."""

    def __init__(self, groups: dict[str, list[int]], postmaster: int | None, interval: float = 0.1):
        self._groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self._postmaster = psutil.Process(postmaster) if postmaster else None
        self._interval = interval
        self._peak: dict[str, float] = dict.fromkeys(self._groups, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._lock = threading.Lock()
        self._db_seen: CpuTimes = {}  # backends come and go: the last CPU seen of each
        self._edges: list[tuple[float, dict[str, CpuTimes], CpuTimes]] = []

    def _db_procs(self) -> list[psutil.Process]:
        if self._postmaster is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [self._postmaster, *self._postmaster.children()]
        return []

    def _db_now(self) -> CpuTimes:
        with self._lock:
            self._db_seen.update(_cpu(self._db_procs()))
            return dict(self._db_seen)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._db_now()
            for name, procs in self._groups.items():
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        self._peak[name] = max(self._peak[name], float(proc.memory_info().rss) / 2**20)
            self._stop.wait(self._interval)

    def _edge(self) -> None:
        cpu = {name: _cpu(procs) for name, procs in self._groups.items()}
        self._edges.append((time.perf_counter(), cpu, self._db_now()))

    def window_started(self) -> None:
        """The load generator began its measured window."""
        self._edges = self._edges[:1]
        self._edge()

    def window_ended(self) -> None:
        """The load generator ended its measured window."""
        self._edge()

    def __enter__(self) -> Monitor:
        self._edge()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if len(self._edges) < 3:  # no window marks: the whole point
            self._edge()

    def usage(self) -> dict[str, Usage]:
        """CPU of each group in the window, and its peak RSS over the point."""
        (start, cpu_start, _), (end, cpu_end, _) = self._edges[-2], self._edges[-1]
        wall = max(end - start, 1e-9)
        out = {}
        for name in self._groups:
            used = _used(cpu_start[name], cpu_end[name])
            out[name] = Usage(round(used, 4), round(used / wall, 2), round(self._peak[name], 1))
        return out

    def postgres_cpu_cores(self) -> float | None:
        if self._postmaster is None:
            return None
        (start, _, db_start), (end, _, db_end) = self._edges[-2], self._edges[-1]
        return round(_used(db_start, db_end) / max(end - start, 1e-9), 2)
