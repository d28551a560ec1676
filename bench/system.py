"""The system under test: PostgreSQL, migrations, service processes, seeding and resource monitoring."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, create_engine, pool, text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common import embedded

ROOT = Path(__file__).resolve().parent.parent
AUTH_SERVICE = "payments.auth.v1.AuthService"
TX_SERVICE = "payments.transaction.v1.TransactionService"
ECHO_SERVICE = "bench.Echo"


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Database:
    """A superuser URL of a fresh, migrated database; `postmaster` is known for embedded servers."""

    url: str
    postmaster: int | None
    cleanup: list[Any] = field(default_factory=list)

    def engine(self) -> Engine:
        return create_engine(self.url, poolclass=pool.NullPool)

    def close(self) -> None:
        for step in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                step()


def start_database(workdir: Path) -> Database:
    """BENCH_DATABASE_URL (a superuser URL; a scratch database is created and dropped) or embedded."""
    external = os.environ.get("BENCH_DATABASE_URL")
    if external:
        name = f"payments_bench_{uuid.uuid4().hex[:8]}"
        embedded.ensure_database(external, name)
        database = Database(embedded.with_database(external, name), None)

        def drop() -> None:
            admin = create_engine(external, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        database.cleanup.append(drop)
    else:
        data = workdir / "pgdata"
        url = embedded.start(data, "payments", delete_on_exit=True)
        pid_file = data / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        database = Database(url, postmaster)
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database.url},
        check=True,
        capture_output=True,
    )
    return database


def wait_healthy(address: str, service: str, timeout: float = 30.0) -> None:
    """Block until the server at `address` reports SERVING for `service`."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"{service} at {address} did not become healthy within {timeout:.0f}s")


@dataclass
class Services:
    """Echo, auth and transaction servers, each as `processes` OS processes on one port."""

    database: Database
    workdir: Path
    hash_env: dict[str, str]
    processes: int = 1
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def _env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_", "TRANSACTION_"))
        }
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=self.database.url,
            GRPC_HOST="127.0.0.1",
            ACCESS_TOKEN_TTL_SECONDS="3600",  # tokens outlive the whole run
            PAGE_TOKEN_KEY=secrets.token_hex(32),  # shared by replicas of the scaling run
            AUTH_PORT=str(self.ports["auth"]),
            AUTH_METRICS_PORT="0",
            TRANSACTION_PORT=str(self.ports["tx"]),
            TRANSACTION_METRICS_PORT="0",
            AUTH_SERVICE_ADDR=self.address("auth"),
            MALLOC_ARENA_MAX="1",  # as the production image sets it (Dockerfile)
            **self.hash_env,
        )
        return env

    def start(self) -> None:
        """Start every process and wait until each service is SERVING."""
        for name in ("echo", "auth", "tx"):
            self.ports.setdefault(name, free_port())
        env = self._env()
        commands = {
            "echo": ([sys.executable, "-m", "bench.echo", str(self.ports["echo"])], {}),
            "auth": ([sys.executable, "-m", "auth_service"], {"DATABASE_ROLE": "payments_auth_svc"}),
            "tx": ([sys.executable, "-m", "transaction_service"], {"DATABASE_ROLE": "payments_tx_svc"}),
        }
        health = {"echo": ECHO_SERVICE, "auth": AUTH_SERVICE, "tx": TX_SERVICE}
        for name, (argv, extra) in commands.items():
            self.procs[name] = []
            for index in range(self.processes):
                log = (self.workdir / f"{name}-{self.processes}p-{index}.log").open("ab")
                self.procs[name].append(
                    subprocess.Popen(
                        argv, cwd=self.workdir, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
                    )
                )
                log.close()
        for name in commands:
            wait_healthy(self.address(name), health[name])

    def stop(self) -> None:
        """SIGTERM every process (they drain), then wait."""
        for group in self.procs.values():
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        for group in self.procs.values():
            for proc in group:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.procs.clear()

    def pids(self) -> dict[str, list[int]]:
        return {name: [p.pid for p in group] for name, group in self.procs.items()}


@dataclass
class User:
    """A seeded, logged-in user with the transaction ids the workloads use."""

    id: str
    email: str
    password: str
    token: str
    ids: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "password": self.password,
            "token": self.token,
            "ids": self.ids,
            "pending": self.pending,
        }


def register_users(address: str, count: int, prefix: str) -> list[User]:
    """Register and log in `count` users through the real AuthService."""
    users = []
    with grpc.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(count):
            email = f"{prefix}-{uuid.uuid4().hex[:10]}@bench.local"
            password = f"bench-{secrets.token_hex(8)}"
            user = stub.Register(
                auth_pb2.RegisterRequest(email=email, password=password, full_name="Bench User"), timeout=30
            ).user
            tokens = stub.Login(
                auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password)),
                timeout=30,
            ).tokens
            users.append(User(user.id, email, password, tokens.access_token))
    return users


SEED = text(
    """
    INSERT INTO payments.transactions
        (user_id, type, status, amount_minor, currency, description, metadata,
         idempotency_key, request_fingerprint, created_at, updated_at)
    SELECT CAST(:uid AS uuid), 'PAYMENT', :status, 100 + g, 'EUR', 'seeded', '{"seed": "1"}'::jsonb,
           :prefix || g, sha256(convert_to(:prefix || g, 'UTF8')),
           now() - make_interval(secs => g), now() - make_interval(secs => g)
    FROM generate_series(1, :n) AS g
    """
)


def seed_transactions(
    engine: Engine, user_id: str, count: int, status: str = "COMPLETED", returning: bool = True
) -> list[str]:
    """`count` rows for one user in a single INSERT ... SELECT generate_series (as superuser).

    No creation events are written: no constraint needs them and no benchmarked read uses them.
    """
    prefix = f"seed-{status.lower()}-{uuid.uuid4().hex[:6]}-"
    statement = text(SEED.text + " RETURNING id") if returning else SEED
    with engine.begin() as conn:
        result = conn.execute(statement, {"uid": user_id, "status": status, "prefix": prefix, "n": count})
        return [str(r[0]) for r in result] if returning else []


def analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE payments.transactions"))


class Monitor:
    """CPU (cores used on average) and peak RSS of each group of processes while a run is going."""

    def __init__(self, groups: dict[str, list[int]], postmaster: int | None, interval: float = 0.1):
        self._groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self._postmaster = psutil.Process(postmaster) if postmaster else None
        self._interval = interval
        self._peak: dict[str, float] = dict.fromkeys(self._groups, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _db_procs(self) -> list[psutil.Process]:
        if self._postmaster is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [self._postmaster, *self._postmaster.children()]
        return []

    @staticmethod
    def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
        out = {}
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[proc.pid] = times.user + times.system
        return out

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._db_last.update(self._cpu(self._db_procs()))  # backends may come and go
            for name, procs in self._groups.items():
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        self._peak[name] = max(self._peak[name], proc.memory_info().rss / 2**20)
            self._stop.wait(self._interval)

    def __enter__(self) -> Monitor:
        self._started = time.perf_counter()
        self._cpu_start = {name: self._cpu(procs) for name, procs in self._groups.items()}
        self._db_start = self._cpu(self._db_procs())
        self._db_last = dict(self._db_start)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.perf_counter() - self._started
        self.result: dict[str, Any] = {}
        for name, procs in self._groups.items():
            end = self._cpu(procs)
            used = sum(v - self._cpu_start[name].get(pid, 0.0) for pid, v in end.items())
            self.result[name] = {
                "cpu_cores": round(used / wall, 2),
                "peak_rss_mb": round(self._peak[name], 1),
            }
        if self._postmaster is not None:
            self._db_last.update(self._cpu(self._db_procs()))
            used = sum(v - self._db_start.get(pid, 0.0) for pid, v in self._db_last.items())
            self.result["postgres"] = {"cpu_cores": round(used / wall, 2)}


@contextlib.contextmanager
def workdir(keep: Path | None = None) -> Iterator[Path]:
    """A scratch folder for logs and the embedded database (removed afterwards unless `keep`)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="payments-bench-") as tmp:
        yield Path(tmp)
