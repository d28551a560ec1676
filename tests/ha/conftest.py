"""A real HA cluster for the session: etcd and three Patroni nodes (scripts/ha.py), both services
(PROCESSES=2 each) on its multi-host URL, and the figures the tests measured, printed at the end.

These tests need root (apt-get installs patroni and etcd-server when missing; PostgreSQL runs as
the postgres user), so the default run leaves tests/ha out; `make test-ha` runs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.ha.cluster import Cluster, Layout
from tests.ha.services import Service, auth_service, transaction_service
from tests.servers import ROOT, migrate

FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("HA figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _free_base_port() -> int:
    """A base port whose cluster ports (base..+2, +10..+12, +20, +21) are all free on loopback."""
    for base in range(21000, 29000, 37):
        try:
            for offset in (0, 1, 2, 10, 11, 12, 20, 21):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise AssertionError("no free ports for the cluster")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("tests/ha need root: apt-get, and PostgreSQL started as the postgres user")
    directory = Path(tempfile.mkdtemp(prefix="payments-ha-"))  # under /tmp: the postgres user reaches it
    command = [sys.executable, str(ROOT / "scripts" / "ha.py"), "--dir", str(directory)]
    up = subprocess.run(
        [*command, "--base-port", str(_free_base_port()), "--timeout", "180", "up"],
        capture_output=True,
        text=True,
        timeout=900,  # apt-get on a fresh machine included
    )
    FIGURES.extend(line for line in up.stdout.splitlines() if line.startswith(("installed", "cluster ready")))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield Cluster(Layout.load_or_create(directory, 0))
    finally:
        subprocess.run([*command, "down"], capture_output=True, timeout=120)
        logs = tmp_path_factory.mktemp("ha-cluster-logs")
        for log in directory.glob("**/*.log"):
            shutil.copy(log, logs / f"{log.parent.name}-{log.name}")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def ha_url(cluster: Cluster) -> str:
    """The multi-host URL, migrated with `alembic upgrade head` (the operators' command)."""
    url = cluster.layout.url()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def ha_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ha-service-logs")


@pytest.fixture(scope="session")
def ha_auth(ha_url: str, ha_logs: Path) -> Iterator[Service]:
    service = auth_service(ha_url, ha_logs, processes=2).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ha_tx(ha_url: str, ha_auth: Service, ha_logs: Path) -> Iterator[Service]:
    service = transaction_service(ha_url, ha_auth.address, ha_logs, processes=2).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ha_users(ha_auth: Service) -> list[tuple[str, str]]:
    """Four registered users (email, password) for the writers."""
    users = []
    with ha_auth.channel() as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(4):
            email, password = f"ha-{uuid.uuid4().hex[:10]}@example.com", f"pw-{uuid.uuid4().hex}"
            request = auth_pb2.RegisterRequest(email=email, password=password, full_name="HA")
            stub.Register(request, timeout=10)
            users.append((email, password))
    return users
