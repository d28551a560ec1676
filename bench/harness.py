"""The state of one run: the database, the servers, the seeded users, and how one point is measured."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import ROOT, parity, pgbase
from bench.database import Database, analyze, seed_transactions, start_database
from bench.loadgen import WINDOW_END, WINDOW_START, LoadSpec
from bench.modes import Mode
from bench.monitor import Monitor
from bench.results import Point, Window
from bench.servers import Server, Services
from bench.users import User, register_users


@contextlib.contextmanager
def workdir(keep: Path | None = None) -> Iterator[Path]:
    """A scratch folder for logs and the embedded database (removed afterwards unless `keep`)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="payments-bench-") as tmp:
        yield Path(tmp)


# the server group each workload is sent to by default (None: a baseline without a server)
SERVER_OF: dict[str, str | None] = {
    "echo": "echo",
    "create": "tx",
    "get": "tx",
    "list": "tx",
    "update": "tx",
    "login": "auth",
    "password_verify": None,
    "pg_insert": None,
}


@dataclass
class Bench:
    """Set up with `setup()`, measured with `point()`, released with `close()`."""

    mode: Mode
    scratch: Path
    database: Database | None = None
    services: Services | None = None
    users: list[User] = field(default_factory=list)

    def system(self) -> tuple[Database, Services]:
        if self.database is None or self.services is None:
            raise RuntimeError("Bench.setup() has not run")
        return self.database, self.services

    def setup(self) -> None:
        started = time.perf_counter()
        self.database = start_database(self.scratch)
        self.services = Services(self.database, self.scratch, self.mode.hash.env())
        self.services.start()
        self.users = register_users(self.services.address("auth"), self.mode.users, "bench")
        engine = self.database.engine()
        for user in self.users:
            user.ids = seed_transactions(engine, user.id, self.mode.rows_per_user)
            user.pending = seed_transactions(engine, user.id, self.mode.pending_per_user, status="PENDING")
        analyze(engine)
        engine.dispose()
        parity.check(self.services.address("tx"), self.services.address("ref"), self.users[0])
        print(f"setup: {time.perf_counter() - started:.1f}s (reference replies checked)", flush=True)

    def point(
        self, workload: str, concurrency: int, users: list[User] | None = None, server: Server | None = None
    ) -> Point:
        """Run one workload at one concurrency against `server` (default: its usual group)."""
        database, services = self.system()
        mode = self.mode
        name = SERVER_OF[workload]
        target = server if server is not None else services.server(name) if name else None
        chosen = users if users is not None else self.users
        groups = {group: [proc.pid for proc in procs] for group, procs in services.procs.items()}
        if target is not None:
            groups[target.name] = list(target.pids)
        with Monitor(groups, database.postmaster) as monitor:
            if workload == "pg_insert":
                window = pgbase.run(
                    database.url,
                    chosen[0].id,
                    concurrency,
                    mode.warmup,
                    mode.duration,
                    self.scratch / "pgbench",
                )
            else:
                spec = LoadSpec(
                    workload="verify" if workload == "password_verify" else workload,
                    concurrency=concurrency,
                    warmup=mode.warmup,
                    duration=mode.duration,
                    hash=mode.hash,
                    targets=list(target.addresses) if target is not None else [],
                    users=chosen,
                )
                window = self._loadgen(spec, monitor)
        for user, left in zip(chosen, window.pending_left, strict=False):
            user.spend(left)
        point = Point(
            workload=workload,
            server=target.name if target is not None else None,
            concurrency=concurrency,
            window=window,
            usage=monitor.usage(),
            postgres_cpu_cores=monitor.postgres_cpu_cores(),
        )
        show(point)
        return point

    def _loadgen(self, spec: LoadSpec, monitor: Monitor) -> Window:
        path = self.scratch / "spec.json"
        path.write_text(spec.dump())
        errors = self.scratch / "loadgen.err"
        with errors.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", str(path)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            assert proc.stdout is not None
            watchdog = threading.Timer(spec.warmup + spec.duration + 60, proc.kill)
            watchdog.start()
            last = ""
            try:
                for line in proc.stdout:  # the window's edges arrive while it runs
                    last = line.strip()
                    if last == WINDOW_START:
                        monitor.window_started()
                    elif last == WINDOW_END:
                        monitor.window_ended()
                code = proc.wait(timeout=60)
            finally:
                watchdog.cancel()
        if code != 0:
            raise RuntimeError(f"load generator failed: {errors.read_text()[-2000:]}")
        return Window.from_json(last)

    def server(self, name: str) -> Server:
        """The processes and address of one server group."""
        return self.system()[1].server(name)

    def register(self, count: int, prefix: str) -> list[User]:
        _, services = self.system()
        return register_users(services.address("auth"), count, prefix)

    def close(self) -> None:
        if self.services is not None:
            self.services.stop()
        if self.database is not None:
            self.database.close()


def show(point: Point) -> None:
    """One line of progress per point."""
    window, served = point.window, point.served
    label = f"{point.workload}@{point.concurrency}" + (f" [{point.server}]" if point.server else "")
    cpu = f"  cpu {served.cpu_seconds / window.count * 1000:.2f} ms/call" if served and window.count else ""
    print(
        f"  {label:<24} {window.rate:>9.1f}/s  p50 {window.p50_ms} ms  p99 {window.p99_ms} ms"
        f"  errors {window.errors}{cpu}",
        flush=True,
    )
