"""A primary that goes on running after its Patroni stopped: what it acknowledges must not be lost.

Patroni hung (here: SIGSTOP; in production a watchdog would reset the machine) cannot demote its
PostgreSQL, so once the standby is promoted two servers accept connections. The old one cannot
replicate any more: its commits are in its WAL but wait for the lost synchronous standby. When
Patroni wakes up it rewinds the old primary and those rows are gone; the services must never have
acknowledged them.

PostgreSQL does not let a statement timeout end that wait (it is disabled before the commit), so
the commits hang: callers see DEADLINE_EXCEEDED, or ABORTED (LOCK_TIMEOUT) for commits queued
behind one that holds the NOTIFY lock, and retry; nothing the old primary holds is acknowledged.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.ha.cluster import Cluster
from tests.ha.conftest import FIGURES
from tests.ha.load import CODE, Writers
from tests.ha.services import server_errors
from tests.ha.test_failover import WARM_UP_SECONDS, ledger

pytestmark = pytest.mark.timeout(900)  # the first test starts the cluster, apt-get included

HUNG_SECONDS = 20.0  # past the leader key's ttl (10 s) and a statement timeout (5 s) after it


def test_writes_to_a_primary_that_lost_its_standby_are_not_acknowledged(
    cluster: Cluster, ha_auth, ha_tx, ha_users
):
    cluster.wait_healthy()
    writers = Writers(ha_auth.address, ha_tx.address, ha_users).start()
    try:
        time.sleep(WARM_UP_SECONDS)
        leader = cluster.role("leader")
        assert leader is not None
        patroni = int((cluster.layout.dir / leader / "patroni.pid").read_text())
        os.kill(patroni, signal.SIGSTOP)
        hung_at = time.monotonic()
        try:
            promoted = cluster.wait_leader(other_than=leader)
            time.sleep(max(0.0, HUNG_SECONDS - (time.monotonic() - hung_at)))
        finally:
            os.kill(patroni, signal.SIGCONT)  # it finds another leader and demotes its PostgreSQL
        cluster.wait_healthy()
        time.sleep(WARM_UP_SECONDS)
    finally:
        writers.stop()
    tally = ledger(cluster, writers)
    FIGURES.append(f"Patroni of {leader} hung for {HUNG_SECONDS:.0f} s, {promoted} promoted: {tally}")
    allowed = {CODE.OK, CODE.UNAVAILABLE, CODE.DEADLINE_EXCEEDED, CODE.ABORTED}
    assert writers.codes() <= allowed, writers.codes()
    assert server_errors(ha_auth, ha_tx) == []
