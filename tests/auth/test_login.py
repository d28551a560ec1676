"""Login: indistinguishable failures, throttling per account and per peer, recovery."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from sqlalchemy import text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers import details_of


def _login(stub, email, password):
    return stub.Login(
        auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    )


def _fail(stub, email, password):
    with pytest.raises(grpc.RpcError) as err:
        _login(stub, email, password)
    return details_of(err.value)


def test_unknown_email_and_wrong_password_are_indistinguishable(auth_stub, new_user):
    caller = new_user()
    unknown = _fail(auth_stub, f"nobody-{uuid.uuid4().hex}@example.com", caller.password)
    wrong = _fail(auth_stub, caller.email, caller.password + "x")
    assert unknown.code == wrong.code == grpc.StatusCode.UNAUTHENTICATED
    assert (unknown.message, unknown.reason, unknown.violations) == (
        wrong.message,
        wrong.reason,
        wrong.violations,
    )


def test_login_is_case_insensitive_on_email(auth_stub, new_user):
    caller = new_user()
    assert _login(auth_stub, caller.email.upper(), caller.password).tokens.access_token


def test_login_without_credentials_is_invalid_argument(auth_stub):
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.Login(auth_pb2.LoginRequest())
    assert details_of(err.value).violations.keys() == {"credentials"}


def test_oversized_login_input_is_invalid_argument_not_hashed(auth_stub):
    details = _fail(auth_stub, "a@example.com", "p" * 10_000)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in details.violations


def test_account_is_throttled_after_repeated_failures_then_recovers(start_auth, auth_stub):
    server = start_auth(login_max_failures=3, login_lockout_seconds=1.0)
    email, password = f"victim-{uuid.uuid4().hex[:8]}@example.com", "the real password"
    auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(3):
            assert _fail(stub, email, "wrong password!").code == grpc.StatusCode.UNAUTHENTICATED
        refused = _fail(stub, email, password)  # even the right password waits out the lockout
        assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.reason == "LOGIN_THROTTLED"
        assert 0 < refused.retry_delay <= 1.0
        time.sleep(refused.retry_delay + 0.1)
        assert _login(stub, email, password).tokens.access_token


def test_lockout_doubles_with_each_further_failure(start_auth, auth_stub):
    server = start_auth(login_max_failures=2, login_lockout_seconds=0.5)
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        _fail(stub, email, "wrong password 1")
        _fail(stub, email, "wrong password 2")
        first = _fail(stub, email, "wrong password 3").retry_delay
        time.sleep(first + 0.05)
        _fail(stub, email, "wrong password 4")
        second = _fail(stub, email, "wrong password 5").retry_delay
    assert first <= 0.5 < second <= 1.0


def test_peer_is_throttled_across_many_accounts(start_auth):
    # over IPv6 loopback, so that this peer's counter is not the one every other test shares
    server = start_auth(login_peer_max_failures=4, login_lockout_seconds=1.0, grpc_host="[::1]")
    with grpc.insecure_channel(f"[::1]:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        codes = [
            _fail(stub, f"spray-{i}-{uuid.uuid4().hex[:6]}@example.com", "guess guess").code for i in range(5)
        ]
    assert codes[:4] == [grpc.StatusCode.UNAUTHENTICATED] * 4
    assert codes[4] == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_failed_login_changes_nothing_but_the_throttle(auth_stub, db_engine, new_user):
    caller = new_user()
    with db_engine.connect() as conn:
        before = conn.execute(
            text("SELECT password_hash FROM auth.users WHERE id = :i"), {"i": caller.id}
        ).scalar()
        tokens_before = conn.execute(text("SELECT count(*) FROM auth.refresh_tokens")).scalar()
    _fail(auth_stub, caller.email, "not the password")
    with db_engine.connect() as conn:
        after = conn.execute(
            text("SELECT password_hash FROM auth.users WHERE id = :i"), {"i": caller.id}
        ).scalar()
        tokens_after = conn.execute(text("SELECT count(*) FROM auth.refresh_tokens")).scalar()
    assert before == after
    assert tokens_after == tokens_before


def test_hash_is_upgraded_on_login_when_parameters_change(start_auth, auth_stub, db_engine, new_user):
    caller = new_user()
    stronger = start_auth(password_time_cost=2)
    with grpc.insecure_channel(f"127.0.0.1:{stronger.port}") as channel:
        _login(auth_pb2_grpc.AuthServiceStub(channel), caller.email, caller.password)
    with db_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM auth.users WHERE id = :i"), {"i": caller.id}
        ).scalar()
    assert ",t=2," in stored
    assert _login(auth_stub, caller.email, caller.password).tokens.access_token
