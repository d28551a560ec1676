"""The worker and the sandbox in the image and in docker-compose.yml match their code; the compose
health checks (no curl in the image) are run against a real HTTP server."""

from __future__ import annotations

import asyncio
import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from sandbox_processor.app import build_app as sandbox_app
from sandbox_processor.config import SandboxSettings
from tests.platform.deploy_processing import (
    SANDBOX_MODULE,
    SANDBOX_VARIABLES,
    WORKER_MODULE,
    WORKER_VARIABLES,
    _module_exists,
)
from tests.servers import ROOT
from transaction_service.processing.settings import ProcessingSettings
from transaction_service.processing.web import build_app


def test_the_worker_serves_the_probe_paths_the_deploy_files_name():
    async def statuses(ready: bool) -> tuple[int, int]:
        app = build_app(None, "sandbox", lambda: ready)  # no flow: no webhook is sent here
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            return (await client.get("/healthz")).status_code, (await client.get("/readyz")).status_code

    assert asyncio.run(statuses(True)) == (200, 200)
    assert asyncio.run(statuses(False)) == (200, 503)


def test_the_sandbox_serves_healthz(tmp_path):
    settings = SandboxSettings(
        api_key="sk_test_deploy_files_only",
        webhook_secret="whsec_deploy_files_only",
        db_path=tmp_path / "sandbox.sqlite3",
    )

    async def status() -> int:
        transport = httpx.ASGITransport(app=sandbox_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return (await client.get("/healthz")).status_code

    assert asyncio.run(status()) == 200


# the image


def test_the_image_ships_the_sandbox_with_a_data_directory_for_the_user():
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY sandbox_processor ./sandbox_processor" in text
    assert "install -d -o 10001 -g 10001" in text and "/var/lib/sandbox" in text.split("AS runtime", 1)[1]


# Compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _http_check(service: dict[str, Any]) -> tuple[str, list[str]]:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test  # no curl in the image
    (url,) = re.findall(r"'(http://[^']+)'", test[3])
    return url, test[1:]


def test_compose_runs_the_worker_and_the_sandbox_hardened_from_the_one_image(compose):
    services = compose["services"]
    for name, module in (("processing", WORKER_MODULE), ("sandbox", SANDBOX_MODULE)):
        service = services[name]
        assert service["command"] == ["python", "-m", module] and _module_exists(module)
        assert service["image"] == services["migrate"]["image"] and service["pull_policy"] == "never"
        assert "build" not in service
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"] and service["user"] == "10001:10001"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["restart"] == "unless-stopped"


def test_compose_worker_settings_and_ports_match_its_code(compose):
    worker = compose["services"]["processing"]
    env = worker["environment"]
    assert set(env) <= WORKER_VARIABLES, set(env) - WORKER_VARIABLES
    assert env["DATABASE_URL"].startswith("postgresql://payments_tx_svc:")  # the transaction service's role
    webhook_port = int(env["WEBHOOK_PORT"])
    assert webhook_port == ProcessingSettings.model_fields["webhook_port"].default
    metrics_port = int(env["PROCESSING_METRICS_PORT"])
    # metrics published on this machine; webhooks only on the compose network (the sandbox calls them)
    assert worker["ports"] == [f"${{BIND_ADDRESS:-127.0.0.1}}:{metrics_port}:{metrics_port}"]
    url, _ = _http_check(worker)
    assert url == f"http://127.0.0.1:{webhook_port}/readyz"
    assert worker["depends_on"]["sandbox"]["condition"] == "service_healthy"
    assert compose["services"]["transactions"]["environment"]["PAYMENT_PROCESSOR"] == env["PAYMENT_PROCESSOR"]


def test_compose_sandbox_settings_match_its_code_and_the_worker(compose):
    sandbox, worker = compose["services"]["sandbox"], compose["services"]["processing"]
    env, worker_env = sandbox["environment"], worker["environment"]
    assert set(env) <= SANDBOX_VARIABLES, set(env) - SANDBOX_VARIABLES
    assert env["SANDBOX_HOST"] == "0.0.0.0"  # reachable from the worker's container
    port = int(env["SANDBOX_PORT"])
    assert sandbox["ports"] == [f"${{BIND_ADDRESS:-127.0.0.1}}:{port}:{port}"]
    assert worker_env["PROCESSOR_URL"] == f"http://sandbox:{port}"
    assert env["SANDBOX_WEBHOOK_URL"] == (
        f"http://processing:{worker_env['WEBHOOK_PORT']}/webhooks/{worker_env['PAYMENT_PROCESSOR']}"
    )
    # the same required .env values on both sides
    assert (
        env["SANDBOX_API_KEY"]
        == worker_env["PROCESSOR_API_KEY"]
        == "${SANDBOX_API_KEY:?set SANDBOX_API_KEY in .env}"
    )
    assert (
        env["SANDBOX_WEBHOOK_SECRET"]
        == worker_env["PROCESSOR_WEBHOOK_SECRET"]
        == "${SANDBOX_WEBHOOK_SECRET:?set SANDBOX_WEBHOOK_SECRET in .env}"
    )
    # its SQLite file on a named volume, so that charges survive a restart
    (mount,) = sandbox["volumes"]
    volume, directory = mount.split(":")
    assert volume in compose["volumes"] and Path(env["SANDBOX_DB_PATH"]).parent == Path(directory)
    url, _ = _http_check(sandbox)
    assert url == f"http://127.0.0.1:{port}/healthz"


class _Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", ["processing", "sandbox"])
def test_the_compose_http_health_checks_follow_the_answer(compose, probe_server, name):
    url, command = _http_check(compose["services"][name])
    port = urlsplit(url).port

    def run(path: str) -> int:
        code = (
            command[2]
            .replace(f"127.0.0.1:{port}/", f"127.0.0.1:{probe_server}/")
            .replace(urlsplit(url).path, path)
        )
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        ).returncode

    assert run("/healthz") == 0
    assert run("/readyz") != 0  # 503: unhealthy


# Kubernetes: the base
