"""A local PostgreSQL HA cluster: one etcd and three Patroni-managed PostgreSQL 15 nodes on loopback.

`make ha` runs `up`: it installs what is missing (Debian's patroni, etcd-server and postgresql-15,
with apt, as root), starts etcd and the three nodes (PostgreSQL runs as the `postgres` user), waits
for a leader with a synchronous standby, creates the `payments` database and prints the multi-host
DATABASE_URL. The processes run on in the background; `down` stops them (`--purge` also deletes
the data). `kill NODE` is a crash (kill -9 of Patroni and of its PostgreSQL); `start NODE` brings it
back. tests/ha drives failovers with these commands and `patronictl`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
from ha_cluster import (
    DATABASE,
    NODES,
    PG_BIN,
    ROOT,
    Layout,
    healthy,
    kill_node,
    members,
    start_etcd,
    start_node,
    stop,
    wait_for,
)

# what `up` needs on the machine, and the Debian package that brings it
NEEDS = {
    Path("/usr/bin/patroni"): "patroni",
    Path("/usr/bin/etcd"): "etcd-server",
    PG_BIN / "postgres": "postgresql-15",
}


def ensure_installed() -> None:
    """Install the missing Debian packages (as root: apt-get), or say which are needed."""
    missing = sorted({package for path, package in NEEDS.items() if not path.exists()})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(
            f"missing {', '.join(missing)}: run as root, or `apt-get install {' '.join(missing)}`"
        )
    print(f"installing {', '.join(missing)} with apt-get", flush=True)
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300"]
    subprocess.run([*apt, "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*apt, "install", "-y", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    print(f"installed {', '.join(missing)} in {time.monotonic() - started:.1f} s", flush=True)


def ensure_database(layout: Layout) -> None:
    """Create the application database on the primary (replicated to the standbys)."""
    conn = psycopg2.connect(layout.url("postgres"), connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{DATABASE}"')
    conn.close()


def up(layout: Layout, timeout: float) -> None:
    """Start whatever is not running and wait until the cluster is healthy."""
    if os.geteuid() != 0:
        raise SystemExit("scripts/ha.py up runs as root (PostgreSQL is started as the postgres user)")
    start_etcd(layout)
    for node in NODES:
        start_node(layout, node)
    wait_for(
        lambda: healthy(layout),
        timeout,
        f"the cluster was not healthy within {timeout:.0f} s: {members(layout)}",
    )
    ensure_database(layout)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="scripts/ha.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=ROOT / ".data" / "ha", help="cluster state (default .data/ha)"
    )
    parser.add_argument("--base-port", type=int, default=5441, help="first PostgreSQL port of a new cluster")
    parser.add_argument("--timeout", type=float, default=120.0)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="install if needed, start, wait until healthy, print DATABASE_URL")
    down = commands.add_parser("down", help="stop every process")
    down.add_argument("--purge", action="store_true", help="also delete the cluster's data")
    commands.add_parser("status", help="the members as Patroni sees them (JSON)")
    commands.add_parser("url", help="print the multi-host DATABASE_URL")
    for verb in ("kill", "start"):
        commands.add_parser(verb, help=f"{verb} one node").add_argument("node", choices=NODES)
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    layout = Layout.load_or_create(directory, args.base_port)
    if args.command == "up":
        ensure_installed()
        started = time.monotonic()
        up(layout, args.timeout)
        print(f"cluster ready in {time.monotonic() - started:.1f} s")
        print(json.dumps(members(layout)))
        print(f"DATABASE_URL='{layout.url()}'\n  e.g. DATABASE_URL='{layout.url()}' make run")
        print(f"  patronictl -c {directory}/pg1/patroni.yml list;  stop: make ha-down")
    elif args.command == "down":
        stop(layout)
        if args.purge:
            shutil.rmtree(directory, ignore_errors=True)
    elif args.command == "status":
        print(json.dumps(members(layout), indent=2))
    elif args.command == "url":
        print(layout.url())
    elif args.command == "kill":
        kill_node(layout, args.node)
    else:
        start_node(layout, args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
