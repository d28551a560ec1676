"""Run the whole system locally: embedded PostgreSQL (unless DATABASE_URL is set), migrations, both services.

`make run` calls this. Ctrl-C stops everything (the services drain gracefully first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auth_service.app import build_service  # noqa: E402
from dashboard import dev as dashboard_dev  # noqa: E402
from payments_common import embedded  # noqa: E402
from payments_common.config import AuthSettings, TransactionSettings, load_settings  # noqa: E402
from payments_common.errors import AlreadyExists  # noqa: E402
from sandbox_processor.dev import start_for_dev  # noqa: E402

DEV_ADMIN_EMAIL = "admin@payments.local"
DEV_ADMIN_PASSWORD = "dev-admin-password"  # only ever created on the embedded dev database
ROLES = {
    "auth_service": "payments_auth_svc",
    "transaction_service": "payments_tx_svc",
    "transaction_service.processing": "payments_tx_svc",  # the processor flow's worker
}


def wait_healthy(address: str, service: str, timeout: float = 30.0) -> None:
    """Block until the server at `address` reports SERVING for `service`."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"{service} at {address} did not become healthy within {timeout:.0f}s")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Start everything, print how to call it, and wait for Ctrl-C."""
    # Ctrl-C and SIGTERM stop everything, even when started with SIGINT ignored (a background job)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    dev_database = not env.get("DATABASE_URL")
    if dev_database:
        data_dir = embedded.dev_data_dir()
        env["DATABASE_URL"] = embedded.start(data_dir)
        print(f"embedded PostgreSQL running (data in {data_dir})", flush=True)
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    settings = load_settings(AuthSettings)
    # the ports as the services will read them (environment, then .env); the transaction service
    # fetches its keys from the auth service this runner starts, whatever AUTH_SERVICE_ADDR says
    auth_port = settings.auth_port
    tx_port = load_settings(TransactionSettings).transaction_port
    auth_address = f"localhost:{auth_port}"
    if dev_database:
        service, _keys, database = build_service(settings)
        try:
            service.register(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, "Dev Admin", roles=("user", "admin"))
        except AlreadyExists:
            pass
        finally:
            database.dispose()
    derived = {
        "auth_service": {},
        "transaction_service": {"AUTH_SERVICE_ADDR": auth_address},
        "transaction_service.processing": {},
    }
    env.setdefault("WEBHOOK_HOST", "127.0.0.1")
    webhook_port = env.setdefault("WEBHOOK_PORT", "50070")
    env.setdefault("SANDBOX_WEBHOOK_URL", f"http://localhost:{webhook_port}/webhooks/sandbox")
    sandbox = start_for_dev(env)  # first: it fills in the sandbox's dev key and secret for the others
    env.setdefault("PAYMENT_PROCESSOR", "sandbox")  # payments with a payment_method go through it
    env.setdefault("PROCESSOR_URL", f"http://localhost:{env.get('SANDBOX_PORT', '50060')}")
    env.setdefault("PROCESSOR_API_KEY", env["SANDBOX_API_KEY"])
    env.setdefault("PROCESSOR_WEBHOOK_SECRET", env["SANDBOX_WEBHOOK_SECRET"])
    children = {
        module: subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**env, "DATABASE_ROLE": env.get("DATABASE_ROLE") or role, **derived[module]},
        )
        for module, role in ROLES.items()
    }
    children["sandbox_processor"] = sandbox
    children["dashboard"] = dashboard_dev.start(env, auth_port=auth_port, tx_port=tx_port)
    try:
        wait_healthy(auth_address, "payments.auth.v1.AuthService")
        wait_healthy(f"localhost:{tx_port}", "payments.transaction.v1.TransactionService")
        dashboard_port = dashboard_dev.wait_ready()
        print_usage(auth_port, tx_port, dev_database)
        print(dashboard_dev.usage(dashboard_port), flush=True)
        while all(child.poll() is None for child in children.values()):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        clean = _stop(children)
    print("all services stopped" if clean else "stopped with errors", flush=True)
    return 0 if clean else 1


def _stop(children: dict[str, subprocess.Popen[bytes]], grace: float = 30.0) -> bool:
    """SIGTERM every service and wait for its drain; one that does not stop in time is killed.

    True when every service stopped by itself with status 0. A Ctrl-C in a terminal reaches the
    services too (one process group), so a service may have drained and exited 0 before this runs;
    one that exited otherwise died on its own, and the run ends with an error.
    """
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    clean = True
    deadline = time.monotonic() + grace
    for name, child in children.items():
        try:
            code = child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {grace:.0f} s; killing it", flush=True)
            child.kill()
            child.wait()
            clean = False
            continue
        if code != 0:
            print(f"{name} exited with status {code}", flush=True)
            clean = False
    return clean


def print_usage(auth_port: int, tx_port: int, dev_database: bool) -> None:
    """Tell the developer how to call the running services."""
    lines = [
        f"ready: auth_service on localhost:{auth_port}, transaction_service on localhost:{tx_port},"
        " the processing worker (webhooks on localhost:" + os.environ.get("WEBHOOK_PORT", "50070") + ")",
        f"  grpcurl -plaintext localhost:{auth_port} list",
        f"  grpcurl -plaintext localhost:{tx_port} describe payments.transaction.v1.TransactionService",
    ]
    if dev_database:
        lines.append(f"dev admin (local dev database only): {DEV_ADMIN_EMAIL} / {DEV_ADMIN_PASSWORD}")
    lines.append("press Ctrl-C to stop")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
