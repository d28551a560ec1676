"""Prometheus metrics on a separate HTTP port."""

from __future__ import annotations

import urllib.request

import grpc
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc


def test_metrics_count_rpcs_by_method_and_code_and_report_the_pool(start_auth):
    server = start_auth()
    assert server.metrics_port and server.metrics_port != server.port
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        stub.GetJwks(auth_pb2.GetJwksRequest())
        with pytest.raises(grpc.RpcError):
            stub.Login(
                auth_pb2.LoginRequest(
                    password=auth_pb2.PasswordCredentials(email="m@example.com", password="x")
                )
            )
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    )
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="/payments.auth.v1.AuthService/GetJwks"}'
        in body
    )
    assert 'grpc_code="UNAUTHENTICATED",grpc_method="/payments.auth.v1.AuthService/Login"' in body
    assert 'grpc_server_handling_seconds_bucket{grpc_method="/payments.auth.v1.AuthService/GetJwks"' in body
    assert "grpc_server_in_flight" in body
    assert "db_pool_connections_in_use" in body and "db_pool_size" in body
    assert 'auth_login_failures_total{kind="user"}' in body
    assert "auth_tokens_issued_total" in body
