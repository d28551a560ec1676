"""Logs: one JSON line per RPC with its outcome, and never a secret."""

from __future__ import annotations

import json

import grpc
import pytest

from payments.auth.v1 import auth_pb2


def test_each_rpc_logs_one_line_with_method_code_and_request_id(auth_stub, new_user, secret_watch):
    caller = new_user()
    start = len(secret_watch.lines)
    auth_stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(*caller.md, ("x-request-id", "req-12345"))
    )
    lines = [json.loads(line) for line in secret_watch.lines[start:]]
    rpc = [line for line in lines if line.get("request_id") == "req-12345"]
    assert len(rpc) == 1
    assert rpc[0]["rpc_method"] == "/payments.auth.v1.AuthService/GetCurrentUser"
    assert rpc[0]["rpc_code"] == "OK"
    assert rpc[0]["principal"] == caller.id


def test_failed_logins_and_bad_tokens_log_no_secret(auth_stub, new_user, secret_watch):
    caller = new_user()
    wrong = "a wrong password that must not be logged"
    secret_watch.secrets.add(wrong)
    with pytest.raises(grpc.RpcError):
        auth_stub.Login(
            auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=caller.email, password=wrong))
        )
    with pytest.raises(grpc.RpcError):
        auth_stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {caller.access_token}x"),)
        )
    assert any('"rpc_code": "UNAUTHENTICATED"' in line for line in secret_watch.lines)
    assert secret_watch.leaks() == []
    # the watch does find a secret when one is there
    assert secret_watch.leaks(extra_text=wrong)


def test_signing_keys_and_client_secrets_never_reach_the_logs(
    db_engine, settle_client, new_user, secret_watch
):
    from sqlalchemy import text

    new_user()
    with db_engine.connect() as conn:
        pems = conn.execute(text("SELECT private_key_pem FROM auth.signing_keys")).scalars().all()
    assert pems
    body = [pem.split("-----")[2].strip() for pem in pems]  # the base64 key material
    corpus = "\n".join(secret_watch.lines)
    assert all(key not in corpus for key in body)
    assert settle_client.password not in corpus
