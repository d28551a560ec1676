"""`make run`'s script: embedded PostgreSQL, migrations, both services, a dev admin; Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.conftest import FAST_HASH_ENV, ROOT
from tests.platform.test_process import free_port


def test_dev_runner_starts_everything_and_stops_cleanly():
    data = Path(tempfile.mkdtemp(prefix="payments-dev-")) / "pg"
    auth_port, tx_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env.update(
        PAYMENTS_DATA_DIR=str(data),
        AUTH_PORT=str(auth_port),
        TRANSACTION_PORT=str(tx_port),
        AUTH_SERVICE_ADDR=f"localhost:{auth_port}",
        **FAST_HASH_ENV,
    )
    proc = subprocess.Popen(
        [sys.executable, "scripts/run_dev.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("press Ctrl-C"):
                break
        text = "".join(output)
        assert "ready: auth_service" in text, text
        assert f"grpcurl -plaintext localhost:{auth_port} list" in text
        with grpc.insecure_channel(f"localhost:{auth_port}") as channel:
            tokens = (
                auth_pb2_grpc.AuthServiceStub(channel)
                .Login(
                    auth_pb2.LoginRequest(
                        password=auth_pb2.PasswordCredentials(
                            email="admin@payments.local", password="dev-admin-password"
                        )
                    )
                )
                .tokens
            )
            me = (
                auth_pb2_grpc.AuthServiceStub(channel)
                .GetCurrentUser(
                    auth_pb2.GetCurrentUserRequest(),
                    metadata=(("authorization", f"Bearer {tokens.access_token}"),),
                )
                .user
            )
        assert auth_pb2.ROLE_ADMIN in me.roles
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)  # keep reading: the services log to the same pipe
        except subprocess.TimeoutExpired:
            state = _kill_tree(proc.pid)
            rest, _ = proc.communicate()
            raise AssertionError(f"not stopped 60 s after Ctrl-C: {state}\n{''.join(output)}{rest}") from None
        assert proc.returncode == 0, "".join(output) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (data / "PG_VERSION").exists()


def _kill_tree(pid: int) -> str:
    """Kill the runner and its services; say what each was doing (for the failure message)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error as err:
        return f"unknown ({err})"
    state = "; ".join(f"{p.pid} {p.status()} {' '.join(p.cmdline()[-3:])}" for p in procs)
    for p in procs:
        p.kill()
    return state
