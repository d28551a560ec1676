"""PROCESSES=2: both services as two forked workers on one port, and nothing per-process breaks.

Every test reaches both workers on purpose: a channel is one TCP connection, SO_REUSEPORT puts
each connection on one worker, and the workers' own /metrics tell which one served it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.ha.services import Service, auth_service, transaction_service
from tests.helpers import wait_until
from tests.servers import FAST_HASH_ENV, ROOT

GRPC_OK = grpc.StatusCode.OK


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def auth(database_url: str, log_dir: Any) -> Iterator[Service]:
    service = auth_service(
        database_url, log_dir, processes=2, LOGIN_MAX_FAILURES="3", SIGNING_KEY_CACHE_SECONDS="0.5"
    ).start()
    assert len(service.workers()) == 2
    yield service
    assert service.stop() == 0, service.log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def tx(database_url: str, auth: Service, log_dir: Any) -> Iterator[Service]:
    service = transaction_service(database_url, auth.address, log_dir, processes=2).start()
    assert len(service.workers()) == 2
    yield service
    assert service.stop() == 0, service.log_path.read_text()[-3000:]


def _jwks(channel: grpc.Channel) -> None:
    auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=5)


def _unauthenticated_get(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError):
        transaction_pb2_grpc.TransactionServiceStub(channel).GetTransaction(
            pb.GetTransactionRequest(id=str(uuid.uuid4())), timeout=5
        )


@pytest.fixture(scope="module")
def auth_stubs(auth: Service) -> list[auth_pb2_grpc.AuthServiceStub]:
    return [auth_pb2_grpc.AuthServiceStub(c) for c in auth.channel_per_worker(_jwks)]


@pytest.fixture(scope="module")
def tx_stubs(tx: Service) -> list[Any]:
    return [
        transaction_pb2_grpc.TransactionServiceStub(c) for c in tx.channel_per_worker(_unauthenticated_get)
    ]


def _login(stub: auth_pb2_grpc.AuthServiceStub, email: str, password: str) -> auth_pb2.LoginResponse:
    credentials = auth_pb2.PasswordCredentials(email=email, password=password)
    return stub.Login(auth_pb2.LoginRequest(password=credentials), timeout=10)


def _user(stubs: list[auth_pb2_grpc.AuthServiceStub]) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    email, password = f"workers-{uuid.uuid4().hex[:10]}@example.com", f"pw-{uuid.uuid4().hex}"
    stubs[0].Register(auth_pb2.RegisterRequest(email=email, password=password, full_name="W"), timeout=10)
    token = _login(stubs[1], email, password).tokens.access_token
    return email, password, (("authorization", f"Bearer {token}"),)


def _create(stub: Any, md: Any, key: str, amount: int = 100) -> pb.Transaction:
    request = pb.CreateTransactionRequest(
        type=pb.TRANSACTION_TYPE_PAYMENT, amount_minor=amount, currency="EUR", idempotency_key=key
    )
    tx: pb.Transaction = stub.CreateTransaction(request, metadata=md, timeout=10).transaction
    return tx


def test_both_workers_serve_on_one_port_and_log_which_they_are(auth, tx, auth_stubs, tx_stubs):
    assert len(auth_stubs) == len(tx_stubs) == 2  # the fixtures found a connection on each worker
    for service in (auth, tx):

        def workers(service: Any = service) -> set[Any]:
            return {line.get("worker") for line in service.log_lines() if line.get("msg") == "rpc"}

        # access-log lines are written in batches, a few milliseconds after their calls
        assert wait_until(lambda: {0, 1} <= workers(), 5), (service.module, workers())


def test_a_page_token_from_one_worker_is_accepted_by_the_other(auth_stubs, tx_stubs):
    _email, _password, md = _user(auth_stubs)
    created = [_create(tx_stubs[i % 2], md, f"page-{i}").id for i in range(3)]
    seen, token = [], ""
    for page in range(3):  # worker 0, 1, 0: each page's token was signed by the other worker
        reply = tx_stubs[page % 2].ListTransactions(
            pb.ListTransactionsRequest(page_size=1, page_token=token), metadata=md, timeout=10
        )
        seen += [t.id for t in reply.transactions]
        token = reply.next_page_token
    assert seen == created[::-1]


def test_login_failures_are_counted_across_workers(auth_stubs):
    email, password, _md = _user(auth_stubs)
    for worker in (0, 1, 0):  # LOGIN_MAX_FAILURES=3, spread over both workers
        with pytest.raises(grpc.RpcError) as failed:
            _login(auth_stubs[worker], email, "not the password")
        assert failed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for worker in (1, 0):  # locked out on every worker, even with the right password
        with pytest.raises(grpc.RpcError) as locked:
            _login(auth_stubs[worker], email, password)
        assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_same_idempotency_key_on_both_workers_records_one_transaction(auth_stubs, tx_stubs):
    _email, _password, md = _user(auth_stubs)
    first, second = (_create(stub, md, "one-key-two-workers") for stub in tx_stubs)
    assert first.id == second.id


def test_a_rotated_signing_key_is_used_by_every_worker_and_verified_by_every_worker(
    database_url, auth_stubs, tx_stubs
):
    email, password, _md = _user(auth_stubs)
    rotated = subprocess.run(
        [sys.executable, "-m", "auth_service", "rotate-keys"],
        cwd=ROOT,
        env={**os.environ, **FAST_HASH_ENV, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    kid = rotated.stdout.split()[3].rstrip(";")
    for auth_stub in auth_stubs:  # each worker's signing-key cache (0.5 s) picks the new key up
        token = _token_signed_with(auth_stub, email, password, kid)
        for tx_stub in tx_stubs:  # each worker's JWK set is refreshed by the unknown kid
            codes = _list_until_ok(tx_stub, (("authorization", f"Bearer {token}"),))
            assert codes[-1] == GRPC_OK and set(codes) <= {GRPC_OK, grpc.StatusCode.UNAVAILABLE}, codes


def _token_signed_with(stub: auth_pb2_grpc.AuthServiceStub, email: str, password: str, kid: str) -> str:
    """Log in on one worker until its token carries `kid` (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        token = _login(stub, email, password).tokens.access_token
        if jwt.get_unverified_header(token)["kid"] == kid or time.monotonic() > deadline:
            assert jwt.get_unverified_header(token)["kid"] == kid
            return token
        time.sleep(0.2)


def _list_until_ok(stub: Any, md: Any) -> list[grpc.StatusCode]:
    codes: list[grpc.StatusCode] = []
    for _ in range(50):
        try:
            stub.ListTransactions(pb.ListTransactionsRequest(page_size=1), metadata=md, timeout=5)
            return [*codes, GRPC_OK]
        except grpc.RpcError as err:
            codes.append(err.code())
            time.sleep(0.1)
    return codes


def _watch_until_seen(watch_on: Any, create_on: Any, md: Any, token: str) -> list[Any]:
    """Watch on one worker (from `token`), create on the other until the watcher sees a create."""
    stream = watch_on.WatchTransactions(pb.WatchTransactionsRequest(resume_token=token), metadata=md)
    received: list[Any] = []
    errors: list[grpc.RpcError] = []

    def read() -> None:
        try:
            for change in stream:
                received.append(change)
        except grpc.RpcError as err:
            errors.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    created: list[str] = []
    deadline = time.monotonic() + 15  # without a token: only changes committed after the call starts
    while time.monotonic() < deadline and not {c.transaction.id for c in received} & set(created):
        created.append(_create(create_on, md, f"watched-{uuid.uuid4().hex[:8]}").id)
        time.sleep(0.3)
    stream.cancel()
    reader.join(5)
    if errors and errors[0].code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE):
        pytest.skip(f"WatchTransactions is not served here: {errors[0].details()}")
    assert {c.transaction.id for c in received} & set(created), (received, created, errors)
    return received


def test_a_change_on_one_worker_reaches_a_watcher_on_the_other_and_its_token_resumes_there(
    auth_stubs, tx_stubs
):
    _email, _password, md = _user(auth_stubs)
    first = _watch_until_seen(tx_stubs[0], tx_stubs[1], md, "")
    # worker 0's resume token on worker 1 (PAGE_TOKEN_KEY keys it): the changes after it
    resumed = _watch_until_seen(tx_stubs[1], tx_stubs[0], md, first[-1].resume_token)
    assert first[-1].event_id not in {c.event_id for c in resumed}


def test_start_up_refuses_several_processes_without_page_token_key_in_one_line(database_url, log_dir):
    refused = transaction_service(database_url, "127.0.0.1:1", log_dir, processes=2, PAGE_TOKEN_KEY="")
    del refused.env["PAGE_TOKEN_KEY"]
    refused.start(wait=False)
    assert refused.proc is not None and refused.proc.wait(timeout=60) == 2
    (line,) = refused.log_path.read_text().strip().splitlines()
    assert line.startswith("configuration error: PAGE_TOKEN_KEY: required when PROCESSES > 1")


def test_a_second_instance_cannot_take_the_port(database_url, tx: Service, log_dir):
    for processes in (2, 1):
        other = transaction_service(database_url, "127.0.0.1:1", log_dir, processes=processes)
        other.port = tx.port
        other.start(wait=False)
        assert other.proc is not None
        assert other.proc.wait(timeout=60) != 0
        assert "cannot listen on" in other.log_path.read_text(), processes


def test_a_worker_that_dies_stops_the_service_with_its_status(database_url, auth: Service, log_dir):
    service = transaction_service(database_url, auth.address, log_dir, processes=2).start()
    victim, survivor = service.workers()
    os.kill(victim, signal.SIGKILL)
    assert service.proc is not None
    assert service.proc.wait(timeout=30) == 128 + signal.SIGKILL
    assert wait_until(lambda: not os.path.exists(f"/proc/{survivor}"), seconds=10)
    assert any(line.get("msg") == "worker exited; stopping the others" for line in service.log_lines())
