"""The servers under test, each a group of OS processes: echo, auth, transaction and the lean reference."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import ROOT
from bench.database import Database

AUTH_SERVICE = "payments.auth.v1.AuthService"
TX_SERVICE = "payments.transaction.v1.TransactionService"
ECHO_SERVICE = "bench.Echo"
TX_ROLE = "payments_tx_svc"
# group name -> (command, extra environment, health-checked service); the port is added per process
COMMANDS: dict[str, tuple[list[str], dict[str, str], str]] = {
    "echo": ([sys.executable, "-m", "bench.echo"], {}, ECHO_SERVICE),
    "auth": ([sys.executable, "-m", "auth_service"], {"DATABASE_ROLE": "payments_auth_svc"}, AUTH_SERVICE),
    "tx": ([sys.executable, "-m", "transaction_service"], {"DATABASE_ROLE": TX_ROLE}, TX_SERVICE),
    # the same database role as the service; always one process (it is not in the scaling run)
    "ref": ([sys.executable, "-m", "bench.reference"], {"DATABASE_ROLE": TX_ROLE}, TX_SERVICE),
}
SCALED = ("echo", "auth", "tx")  # the groups that run `processes` processes


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@dataclass(frozen=True)
class Server:
    """Where a workload is sent (its calls spread over every address) and whose processes are monitored."""

    name: str
    addresses: tuple[str, ...]
    pids: tuple[int, ...]


def spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """A server process whose output goes to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _port_setting(name: str, port: int) -> tuple[list[str], dict[str, str]]:
    """How one process of a group is told its port: an argument or its service's variable."""
    if name == "auth":
        return [], {"AUTH_PORT": str(port)}
    if name == "tx":
        return [], {"TRANSACTION_PORT": str(port)}
    return [str(port)], {}


@dataclass
class Services:
    """Every server group of the run; each process on a port of its own (the services do not share
    ports), so a scaled group is reached by spreading the load generator's channels over them."""

    database: Database
    workdir: Path
    hash_env: dict[str, str]
    page_token_key: str = field(default_factory=lambda: secrets.token_hex(32))  # shared by replicas
    ports: dict[str, list[int]] = field(default_factory=dict)
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def addresses(self, name: str) -> tuple[str, ...]:
        return tuple(f"127.0.0.1:{port}" for port in self.ports[name])

    def address(self, name: str) -> str:
        """The first process of a group (the one the others call, for auth)."""
        return self.addresses(name)[0]

    def server(self, name: str) -> Server:
        return Server(name, self.addresses(name), tuple(p.pid for p in self.procs[name]))

    def env(self) -> dict[str, str]:
        """The environment every server process shares (settings of the services, by variable)."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_", "TRANSACTION_"))
        }
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=self.database.url,
            GRPC_HOST="127.0.0.1",
            ACCESS_TOKEN_TTL_SECONDS="3600",  # tokens outlive the whole run
            PAGE_TOKEN_KEY=self.page_token_key,
            AUTH_METRICS_PORT="0",
            TRANSACTION_METRICS_PORT="0",
            AUTH_SERVICE_ADDR=self.address("auth"),
            MALLOC_ARENA_MAX="1",  # as the production image sets it (Dockerfile)
            # a load generator logs in and registers from one address, many at once: no throttle
            LOGIN_MAX_FAILURES="1000000",
            LOGIN_ACCOUNT_MAX_FAILURES="1000000",
            LOGIN_PEER_MAX_FAILURES="1000000",
            REGISTER_PEER_MAX="1000000",
            **self.hash_env,
        )
        return env

    def start(self, processes: int = 1) -> None:
        """Start every group (`processes` each for the scaled ones) and wait until each is SERVING."""
        self.ports = {
            name: [free_port() for _ in range(processes if name in SCALED else 1)] for name in COMMANDS
        }
        shared = self.env()
        for name, (argv, extra, service) in COMMANDS.items():
            self.procs[name] = []
            for index, port in enumerate(self.ports[name]):
                args, own = _port_setting(name, port)
                log = self.workdir / f"{name}-{processes}p-{index}.log"
                self.procs[name].append(spawn([*argv, *args], {**shared, **extra, **own}, log, self.workdir))
            if name == "auth":  # the others fetch the auth service's keys as they start
                for address in self.addresses(name):
                    wait_healthy(address, service)
        for name, (_, _, service) in COMMANDS.items():
            for address in self.addresses(name):
                wait_healthy(address, service)

    def stop(self) -> None:
        """SIGTERM every process (they drain), then wait."""
        stop_all([proc for group in self.procs.values() for proc in group])
        self.procs.clear()


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process, then wait for each (killed after 20 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
