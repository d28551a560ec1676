"""The tests' handle on the Patroni cluster: who leads, crash a node, switch over, wait for health.

The processes are those of `scripts/ha.py` (its `ha_cluster` module); the switchover is the
operators' own command, `patronictl switchover`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, pool

from payments_common.db import driver_url
from tests.servers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import ha_cluster

Layout = ha_cluster.Layout
NODES = ha_cluster.NODES


@dataclass
class Cluster:
    """One running cluster (etcd and three Patroni nodes) in `layout.dir`."""

    layout: ha_cluster.Layout

    def members(self) -> list[dict[str, Any]]:
        return ha_cluster.members(self.layout)

    def role(self, role: str) -> str | None:
        """The running member with `role` ("leader", "sync_standby"), if any."""
        running = (m for m in self.members() if m.get("state") == "running")
        return next((m["name"] for m in running if m.get("role") == role), None)

    def kill(self, node: str) -> float:
        """kill -9 of the node's Patroni and PostgreSQL; the monotonic time they were all dead."""
        ha_cluster.kill_node(self.layout, node)
        return time.monotonic()

    def start(self, node: str) -> None:
        ha_cluster.start_node(self.layout, node)

    def writable(self) -> bool:
        return ha_cluster.writable(self.layout)

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Until every node runs again, one of them the synchronous standby of a writable leader."""
        deadline = time.monotonic() + timeout
        while not ha_cluster.healthy(self.layout):
            assert time.monotonic() < deadline, f"cluster not healthy after {timeout} s: {self.members()}"
            time.sleep(0.5)

    def wait_leader(self, other_than: str, timeout: float = 60.0) -> str:
        """The new leader once it is not `other_than` and accepts writes."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.role("leader")
            if leader not in (None, other_than) and self.writable():
                return leader
            assert time.monotonic() < deadline, f"no new leader after {timeout} s: {self.members()}"
            time.sleep(0.1)

    def switchover(self, leader: str, candidate: str) -> float:
        """`patronictl switchover` from `leader` to `candidate`; the monotonic time it was asked."""
        config = self.layout.dir / leader / "patroni.yml"
        at = time.monotonic()
        command = ["patronictl", "-c", str(config), "switchover", "--force"]
        done = subprocess.run(
            [*command, "--leader", leader, "--candidate", candidate],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return at

    def engine(self) -> Engine:
        """A superuser engine on the multi-host URL, for checks of what was written."""
        return create_engine(driver_url(self.layout.url()), poolclass=pool.NullPool)

    def standby_url(self) -> str:
        """A superuser URL of one standby, for a connection that does not follow the primary."""
        standby = self.role("sync_standby") or self.role("replica")
        assert standby is not None, self.members()
        return self.layout.node_url(standby)
