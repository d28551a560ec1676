"""The hashing bound of the auth service (issue 11, defect 3): no more hashes at once than allowed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auth_service.hashing import HashSlots, usable_cpus
from payments_common.errors import ResourceExhausted


def slow(seconds: float = 0.05) -> int:
    time.sleep(seconds)
    return 1


def test_sixteen_concurrent_logins_never_hash_more_than_the_concurrency_at_once() -> None:
    slots = HashSlots(concurrency=2, wait=5.0)
    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(lambda _: slots.run("login", slow), range(16)))
    assert done == [1] * 16 and slots.peak == 2


def test_a_login_that_waits_longer_than_allowed_is_refused_with_a_retry_hint() -> None:
    slots = HashSlots(concurrency=1, wait=0.05)
    started = threading.Event()

    def hold() -> int:
        started.set()
        return slow(0.5)

    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(slots.run, "login", hold)
        started.wait()
        with pytest.raises(ResourceExhausted) as refused:
            slots.run("login", slow)
        holder.result()
    assert refused.value.reason == "HASHING_BUSY" and refused.value.retry_after == 1.0


def test_registrations_hold_at_most_half_the_slots_so_logins_still_get_through() -> None:
    slots = HashSlots(concurrency=4, wait=2.0)
    running: list[int] = []
    lock = threading.Lock()
    peak_registering = 0

    def register_work() -> int:
        nonlocal peak_registering
        with lock:
            running.append(1)
            peak_registering = max(peak_registering, len(running))
        time.sleep(0.05)
        with lock:
            running.pop()
        return 1

    with ThreadPoolExecutor(12) as pool:
        floods = [pool.submit(slots.run, "register", register_work) for _ in range(12)]
        login_started = time.monotonic()
        assert slots.run("login", lambda: slow(0.01)) == 1
        login_time = time.monotonic() - login_started
        outcomes = []
        for future in floods:
            try:
                outcomes.append(future.result())
            except ResourceExhausted:
                outcomes.append(0)
    assert peak_registering <= 2  # half of the four slots
    assert login_time < 0.5  # it did not queue behind the registrations
    assert 0 in outcomes  # beyond the slots and the few that may wait, registrations are refused at once


def test_the_usable_cpus_follow_the_cgroup_quota(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two threads may run
    assert usable_cpus(quota) == min(2, usable_cpus(tmp_path / "missing"))
    quota.write_text("max 100000\n")
    assert usable_cpus(quota) == usable_cpus(tmp_path / "missing")
