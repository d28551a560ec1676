"""The service processes as operators run them: start-up checks, JSON logs, SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers import free_port
from tests.servers import AUTH_ROLE, FAST_HASH_ENV, ROOT


def _run_module(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "ALGORITHM", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd="/",
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "postgresql://x@/y", "ALGORITHM": "HS256"}, "SECRET_KEY"),
        ({"DATABASE_URL": "postgresql://x@/y", "ALGORITHM": "HS256", "SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DATABASE_URL": "postgresql://x@/y", "ALGORITHM": "HS256", "SECRET_KEY": "changeme"}, "SECRET_KEY"),
        ({"DATABASE_URL": "postgresql://x@/y", "ALGORITHM": "RS1"}, "ALGORITHM"),
        ({"DATABASE_URL": "postgresql://x@/y", "AUTH_PORT": "seventy"}, "AUTH_PORT"),
        ({}, "DATABASE_URL"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line_naming_it(env, named):
    result = _run_module("auth_service", env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and named in lines[0]
    assert "Traceback" not in result.stderr
    if "SECRET_KEY" in env:
        assert env["SECRET_KEY"] not in lines[0].removeprefix("configuration error: SECRET_KEY")


def test_sigterm_turns_health_not_serving_then_drains_and_logs_no_secrets(database_url):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATABASE_ROLE": AUTH_ROLE,
        "AUTH_PORT": str(port),
        "GRPC_HOST": "127.0.0.1",
        "SHUTDOWN_GRACE_SECONDS": "2",
        **FAST_HASH_ENV,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "auth_service"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    password = "process-level secret password"
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            email = f"proc-{port}@example.com"
            stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
            tokens = stub.Login(
                auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
            ).tokens
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="payments.auth.v1.AuthService"), timeout=20
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            proc.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = proc.communicate()
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    rpc_lines = [r for r in records if r["msg"] == "rpc"]
    assert {r["rpc_method"].rsplit("/", 1)[1] for r in rpc_lines} >= {"Register", "Login"}
    assert all({"rpc_code", "duration_ms", "request_id"} <= r.keys() for r in rpc_lines)
    assert any("PLAINTEXT" in r["msg"] for r in records)
    assert any(r["msg"] == "draining" for r in records)
    for secret in (password, tokens.access_token, tokens.refresh_token):
        assert secret not in stdout + stderr


def test_a_port_in_use_stops_start_up_with_one_clear_line(database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "DATABASE_URL": database_url,
            "DATABASE_ROLE": AUTH_ROLE,
            "GRPC_HOST": "127.0.0.1",
            **FAST_HASH_ENV,
            "AUTH_METRICS_PORT": str(port),
        }
        result = _run_module("auth_service", env)
    assert result.returncode == 1
    assert f"start-up error: metrics port {port}" in result.stderr
    assert "Traceback" not in result.stderr
