"""The dashboard's entries in docker-compose.yml, the Dockerfile and deploy/kubernetes match its code."""

from __future__ import annotations

import subprocess
import sys

import yaml

from dashboard.settings import DashboardSettings
from tests.helpers import wait_until
from tests.servers import ROOT

VARIABLES = {name.upper() for name in DashboardSettings.model_fields}


def _kubernetes() -> list[dict]:
    text = (ROOT / "deploy" / "kubernetes" / "dashboard.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_compose_runs_the_dashboard_after_healthy_services_with_a_required_secret():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    spec = compose["services"]["dashboard"]
    assert spec["command"] == ["python", "-m", "dashboard"]
    env = spec["environment"]
    assert set(env) <= VARIABLES, set(env) - VARIABLES
    assert (
        env["AUTH_SERVICE_ADDR"] == "auth:50051" and env["TRANSACTION_SERVICE_ADDR"] == "transactions:50052"
    )
    assert env["DASHBOARD_SESSION_SECRET"].startswith("${DASHBOARD_SESSION_SECRET:?")
    assert spec["ports"] == [f"${{BIND_ADDRESS:-127.0.0.1}}:{env['DASHBOARD_PORT']}:{env['DASHBOARD_PORT']}"]
    assert {name: dep["condition"] for name, dep in spec["depends_on"].items()} == {
        "auth": "service_healthy",
        "transactions": "service_healthy",
    }
    test = spec["healthcheck"]["test"]
    assert test[1:4] == ["python", "-m", "dashboard.healthcheck"]
    assert test[4] == f"http://127.0.0.1:{env['DASHBOARD_PORT']}/healthz"


def test_the_image_ships_the_dashboard():
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY dashboard ./dashboard" in text and "8080" in text


def test_kubernetes_runs_the_dashboard_with_its_secret_and_http_probes():
    kinds = {doc["kind"]: doc for doc in _kubernetes()}
    assert set(kinds) == {"Deployment", "Service", "NetworkPolicy"}  # no autoscaler: sessions are in memory
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "dashboard"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= VARIABLES, set(env) - VARIABLES
    secret = env["DASHBOARD_SESSION_SECRET"]
    assert "value" not in secret and secret["valueFrom"]["secretKeyRef"]["name"] == "payments-dashboard"
    assert env["DASHBOARD_SECURE_COOKIES"]["value"] == "true"
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": int(env["DASHBOARD_PORT"]["value"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} == {"http"}
    kustomization = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    assert "dashboard.yaml" in kustomization["resources"]


def test_the_health_check_command_follows_the_dashboard(dashboard):
    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dashboard.healthcheck", url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    up = run(f"{dashboard.url}/healthz")
    assert up.returncode == 0 and up.stdout.strip() == "ok"
    down = run("http://127.0.0.1:9/healthz")
    assert down.returncode == 1 and "unhealthy" in down.stderr


def test_readiness_follows_both_services(dashboard):
    import urllib.request

    with urllib.request.urlopen(f"{dashboard.url}/readyz", timeout=5) as reply:  # noqa: S310
        assert reply.status == 200 and reply.read() == b"ready"


def _readiness(port: int) -> bytes:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return bytes(reply.read())
    except urllib.error.HTTPError as err:
        return bytes(err.read())


def test_the_dev_runner_hook_starts_a_dashboard_on_the_runners_services(
    auth_address, tx_address, monkeypatch
):
    import os
    import signal

    from dashboard import dev
    from tests.helpers import free_port

    monkeypatch.setenv("DASHBOARD_PORT", str(free_port()))
    monkeypatch.delenv("DASHBOARD_SESSION_SECRET", raising=False)
    auth_port, tx_port = (int(address.rsplit(":", 1)[1]) for address in (auth_address, tx_address))
    child = dev.start(dict(os.environ), auth_port=auth_port, tx_port=tx_port)
    try:
        listening = dev.wait_ready(timeout=30)
        assert listening == int(os.environ["DASHBOARD_PORT"]) and str(listening) in dev.usage(listening)
        # it found both services by the runner's ports (ready once its channels have connected)
        assert wait_until(lambda: _readiness(listening) == b"ready", 10), _readiness(listening)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
