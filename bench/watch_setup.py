"""Setup of `python -m bench.watch`: PostgreSQL, both services as processes, users and a watcher.

The services run as operators run them (`python -m ...`, production settings, access log on, to a
file in the run's folder); the users are registered and logged in through the RPCs, the watcher
is a service principal with the `transactions:watch` scope made with the operators' CLI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import ROOT
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common import embedded

USERS = 4
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Stack:
    auth: str
    transactions: str
    user_tokens: list[str]
    watcher_token: str
    ids: list[str]
    tx_pid: int


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(address: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{address} did not become healthy")
            time.sleep(0.1)


@dataclass(frozen=True)
class Services:
    """The running services: addresses, the auth service's environment (for its CLI), the server's pid."""

    auth: str
    transactions: str
    auth_env: dict[str, str]
    tx_pid: int


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def services(folder: Path) -> Iterator[Services]:
    url = embedded.start(folder / "data", "bench_watch", delete_on_exit=True)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    auth_port, tx_port = _port(), _port()
    common = {**env, "GRPC_HOST": "127.0.0.1", "LOG_LEVEL": "INFO", "PAGE_TOKEN_KEY": uuid.uuid4().hex * 2}
    auth_env = {
        **common,
        "DATABASE_ROLE": "payments_auth_svc",
        "AUTH_PORT": str(auth_port),
        "AUTH_METRICS_PORT": "0",
    }
    tx_env = {
        **common,
        "DATABASE_ROLE": "payments_tx_svc",
        "TRANSACTION_PORT": str(tx_port),
        "TRANSACTION_METRICS_PORT": "0",
        "AUTH_SERVICE_ADDR": f"127.0.0.1:{auth_port}",
    }
    processes = []
    try:
        for module, module_env in (("auth_service", auth_env), ("transaction_service", tx_env)):
            log = (folder / f"{module}.log").open("w")
            processes.append(
                subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=module_env, stderr=log)
            )
        _healthy(f"127.0.0.1:{auth_port}")
        _healthy(f"127.0.0.1:{tx_port}")
        yield Services(f"127.0.0.1:{auth_port}", f"127.0.0.1:{tx_port}", auth_env, processes[1].pid)
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)


def stack(running: Services, seeded: int) -> Stack:
    """Users with tokens, the watcher's token, and `seeded` transactions of the first user."""
    auth, transactions, auth_env = running.auth, running.transactions, running.auth_env
    with grpc.insecure_channel(auth) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        tokens = []
        for _ in range(USERS):
            email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", f"pw-{uuid.uuid4().hex}"
            stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
            login = auth_pb2.LoginRequest(
                password=auth_pb2.PasswordCredentials(email=email, password=password)
            )
            tokens.append(stub.Login(login).tokens.access_token)
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "auth_service",
                "create-service-principal",
                "--name",
                "bench-watch",
                "--scope",
                "transactions:watch",
            ],
            cwd=ROOT,
            env=auth_env,
            check=True,
            capture_output=True,
            text=True,
        )
        fields = dict(line.split(": ", 1) for line in created.stdout.strip().splitlines())
        client = auth_pb2.ClientCredentials(
            client_id=fields["client_id"], client_secret=fields["client_secret (shown once)"]
        )
        watcher = stub.Login(auth_pb2.LoginRequest(client=client)).tokens.access_token
    with grpc.insecure_channel(transactions) as channel:
        tx = transaction_pb2_grpc.TransactionServiceStub(channel)
        md = (("authorization", f"Bearer {tokens[0]}"),)
        ids = [
            tx.CreateTransaction(
                pb.CreateTransactionRequest(
                    type=pb.TRANSACTION_TYPE_PAYMENT,
                    amount_minor=100,
                    currency="EUR",
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=md,
            ).transaction.id
            for _ in range(seeded)
        ]
    return Stack(auth, transactions, tokens, watcher, ids, running.tx_pid)
