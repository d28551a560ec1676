"""The local HA cluster's processes: etcd and three Patroni nodes, started, crashed and inspected.

`scripts/ha.py` is its command line; tests/ha imports it. Each process runs in a session of its own
(it outlives its command), its pid in the cluster's folder; Patroni starts PostgreSQL as postgres.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import string
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "ha" / "patroni.yml"
NODES = ("pg1", "pg2", "pg3")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "payments"


@dataclass(frozen=True)
class Layout:
    """Where a cluster lives and the loopback ports it uses (PostgreSQL: base, base+1, base+2)."""

    dir: Path
    base_port: int
    password: str

    def pg_port(self, node: str) -> int:
        return self.base_port + NODES.index(node)

    def rest_port(self, node: str) -> int:
        return self.base_port + 10 + NODES.index(node)

    @property
    def etcd_port(self) -> int:
        return self.base_port + 20

    def url(self, database: str = DATABASE) -> str:
        """The libpq multi-host URL the services use: whichever node accepts writes."""
        hosts = ",".join(f"127.0.0.1:{self.pg_port(n)}" for n in NODES)
        return f"postgresql://postgres:{self.password}@{hosts}/{database}?target_session_attrs=read-write"

    def node_url(self, node: str, database: str = DATABASE) -> str:
        """A superuser URL of one node, primary or standby."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.pg_port(node)}/{database}"

    @classmethod
    def load_or_create(cls, directory: Path, base_port: int) -> Layout:
        state = directory / "cluster.json"
        if state.exists():
            saved = json.loads(state.read_text())
            return cls(directory, int(saved["base_port"]), str(saved["password"]))
        layout = cls(directory, base_port, secrets.token_hex(16))
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)  # the postgres user reaches its node's folder through it
        state.write_text(json.dumps({**asdict(layout), "dir": str(directory)}))
        state.chmod(0o600)
        return layout


def _alive(pidfile: Path, name: str) -> int | None:
    """The pid in `pidfile` if that process runs and is `name` (not a reused pid)."""
    try:
        return _alive_pid(int(pidfile.read_text()), name)
    except (OSError, ValueError):
        return None


def _alive_pid(pid: int, name: str) -> int | None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if name.encode() in cmdline else None


def _spawn(argv: list[str], log: Path, pidfile: Path, **kwargs: Any) -> None:
    """Start a daemon in its own session (it outlives this command), output to `log`."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, **kwargs
        )
    pidfile.write_text(str(proc.pid))


def start_etcd(layout: Layout) -> None:
    """One etcd member on loopback (the DCS Patroni keeps the leader key in)."""
    if _alive(layout.dir / "etcd.pid", "etcd"):
        return
    client, peer = f"http://127.0.0.1:{layout.etcd_port}", f"http://127.0.0.1:{layout.etcd_port + 1}"
    flags = {
        "name": "ha",
        "data-dir": layout.dir / "etcd",
        "listen-client-urls": client,
        "advertise-client-urls": client,
        "listen-peer-urls": peer,
        "initial-advertise-peer-urls": peer,
        "initial-cluster": f"ha={peer}",
        "enable-v2": "true",  # Patroni's `etcd:` client (deploy/ha/patroni.yml says why)
        "log-level": "warn",
        "logger": "zap",
    }
    argv = ["etcd", *(f"--{flag}={value}" for flag, value in flags.items())]
    _spawn(argv, layout.dir / "etcd.log", layout.dir / "etcd.pid")
    wait_for(lambda: _get(f"{client}/health") is not None, 30, "etcd did not answer on /health")


def start_node(layout: Layout, node: str) -> None:
    """Start Patroni for `node` as the postgres user (Patroni starts PostgreSQL itself)."""
    node_dir = layout.dir / node
    if _alive(node_dir / "patroni.pid", "patroni"):
        return
    node_dir.mkdir(exist_ok=True)
    config = string.Template(TEMPLATE.read_text()).substitute(
        name=node,
        node_dir=node_dir,
        pg_port=layout.pg_port(node),
        rest_port=layout.rest_port(node),
        etcd_port=layout.etcd_port,
        password=layout.password,
    )
    (node_dir / "patroni.yml").write_text(config)
    (node_dir / "patroni.yml").chmod(0o600)
    shutil.chown(node_dir, "postgres", "postgres")
    for path in node_dir.iterdir():
        shutil.chown(path, "postgres", "postgres")
    node_dir.chmod(0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(node_dir)}
    # setpriv execs Patroni as postgres (the pid stays Patroni's). Not Popen(user=...): that forks
    # without exec first, and a fork of a process with gRPC threads (the tests) may crash
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
    argv = [*as_postgres, "patroni", str(node_dir / "patroni.yml")]
    _spawn(argv, node_dir / "patroni.log", node_dir / "patroni.pid", env=env, cwd=node_dir)


def kill_node(layout: Layout, node: str) -> None:
    """A crash of the node's machine: SIGKILL to Patroni and to every PostgreSQL process of it.

    PostgreSQL's backends are not in the postmaster's process group (each calls setsid), and one
    that outlives its postmaster may still commit: so the postmaster is stopped first (it forks
    nothing more), then its children, then all of them are killed.
    """
    patroni = _alive(layout.dir / node / "patroni.pid", "patroni")
    if patroni:
        os.kill(patroni, signal.SIGKILL)
    data = layout.dir / node / "data"
    try:  # the first line of postmaster.pid, if that process is this node's postmaster
        postmaster = _alive_pid(int((data / "postmaster.pid").read_text().split()[0]), str(data))
    except (OSError, ValueError, IndexError):
        return
    if postmaster is None:
        return
    os.kill(postmaster, signal.SIGSTOP)
    doomed = [postmaster, *_children(postmaster)]
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def stop(layout: Layout, timeout: float = 60.0) -> None:
    """Stop every node (Patroni shuts its PostgreSQL down), then etcd."""
    pids = [p for n in NODES if (p := _alive(layout.dir / n / "patroni.pid", "patroni"))]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not any(_alive(layout.dir / n / "patroni.pid", "patroni") for n in NODES), timeout, "")
    for node in NODES:
        kill_node(layout, node)  # whatever did not stop in time
    etcd = _alive(layout.dir / "etcd.pid", "etcd")
    if etcd:
        os.kill(etcd, signal.SIGTERM)
        wait_for(lambda: not _alive(layout.dir / "etcd.pid", "etcd"), 10, "")


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 (loopback URLs of our own)
            return json.loads(reply.read() or b"null")
    except (OSError, ValueError):
        return None


def members(layout: Layout) -> list[dict[str, Any]]:
    """The cluster as Patroni's REST API of the first node that answers describes it."""
    for node in NODES:
        cluster = _get(f"http://127.0.0.1:{layout.rest_port(node)}/cluster")
        if cluster is not None:
            return list(cluster.get("members", []))
    return []


def healthy(layout: Layout, expected: int = len(NODES)) -> bool:
    """A leader that accepts writes, a synchronous standby, and `expected` running members in all."""
    found = members(layout)
    running = [m for m in found if m.get("state") == "running"]
    roles = {m.get("role") for m in running}
    caught_up = all(isinstance(m.get("lag", 0), int) and m.get("lag", 0) < 16 * 2**20 for m in running)
    return len(running) >= expected and {"leader", "sync_standby"} <= roles and caught_up and writable(layout)


def writable(layout: Layout) -> bool:
    """True when the multi-host URL reaches a primary (what the services will connect to)."""
    try:
        conn = psycopg2.connect(layout.url("postgres"), connect_timeout=2)
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT NOT pg_is_in_recovery()")
            return bool(cur.fetchone()[0])  # type: ignore[index]
    except psycopg2.Error:
        return False
    finally:
        conn.close()


def wait_for(check: Any, timeout: float, failure: str) -> None:
    """Poll `check` until true; after `timeout` s exit with `failure` (or just return when empty)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            if failure:
                raise SystemExit(failure)
            return
        time.sleep(0.2)
