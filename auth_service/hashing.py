"""Where password hashes run: bounded by the CPUs this process may use, so memory stays bounded.

Argon2id needs `PASSWORD_MEMORY_KIB` per hash in progress, so the number of hashes at once is
the memory bound (`PASSWORD_HASH_CONCURRENCY`, by default the CPUs the process may use: its CPU
affinity and cgroup quota, not the node's cores). A hash waits at most `wait` seconds for a slot,
then the call is refused with RESOURCE_EXHAUSTED and RetryInfo. Registrations may hold at most
half of the slots, and at most `concurrency` of them may wait (the rest are refused at once, so
they never occupy the threads logins need): logins of existing users are served under a flood.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Gauge

from payments_common.errors import ResourceExhausted

T = TypeVar("T")
IN_PROGRESS = Gauge("auth_password_hashes_in_progress", "Password hashes running now")
REFUSED = Counter(
    "auth_password_hashes_refused_total", "Hashes refused for lack of a slot, by kind", ["kind"]
)


def usable_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity, lowered by a cgroup v2 CPU quota if any."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


class HashSlots:
    """At most `concurrency` hashes at once; registrations at most half of them."""

    def __init__(self, concurrency: int, wait: float = 5.0):
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._register = threading.BoundedSemaphore(max(1, concurrency // 2))
        self._wait = wait
        self._lock = threading.Lock()
        self._running = 0
        self._registering = 0  # holding or waiting for a registration slot
        self.peak = 0  # the most hashes seen at once (tests and the README figures read it)

    def run(self, kind: str, work: Callable[[], T]) -> T:
        """Run `work` in a slot (`kind` "login" or "register"), or refuse when none frees in time."""
        if kind != "register":
            return self._in_slot(kind, work)
        with self._lock:
            admitted = self._registering < self.concurrency + max(1, self.concurrency // 2)
            self._registering += admitted
        if not admitted:
            raise self._refused(kind)
        try:
            if not self._register.acquire(timeout=self._wait):
                raise self._refused(kind)
            try:
                return self._in_slot(kind, work)
            finally:
                self._register.release()
        finally:
            with self._lock:
                self._registering -= 1

    def _in_slot(self, kind: str, work: Callable[[], T]) -> T:
        if not self._slots.acquire(timeout=self._wait):
            raise self._refused(kind)
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
        IN_PROGRESS.inc()
        try:
            return work()
        finally:
            IN_PROGRESS.dec()
            with self._lock:
                self._running -= 1
            self._slots.release()

    @staticmethod
    def _refused(kind: str) -> ResourceExhausted:
        REFUSED.labels(kind).inc()
        return ResourceExhausted(
            "the service is busy checking passwords; retry shortly", retry_after=1.0, reason="HASHING_BUSY"
        )
