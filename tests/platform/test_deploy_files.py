"""docker-compose.yml, the Dockerfile and the Kubernetes manifests are right by construction.

There is no Docker engine or cluster here, so these tests check every command, module, port,
variable and health-check target they name against the code, and run the health-check command
for real.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from auth_service.app import SERVICE_NAME as AUTH_SERVICE
from payments.transaction.v1 import transaction_pb2
from payments_common.config import AuthSettings, TransactionSettings
from tests.helpers import free_port
from tests.servers import ROOT

TX_SERVICE = transaction_pb2.DESCRIPTOR.services_by_name["TransactionService"].full_name
MODULES = {
    "auth_service": (AuthSettings, AUTH_SERVICE, "AUTH_PORT", 50051),
    "transaction_service": (TransactionSettings, TX_SERVICE, "TRANSACTION_PORT", 50052),
}
MIGRATION_VARIABLES = {"DATABASE_URL", "AUTH_DB_PASSWORD", "TRANSACTION_DB_PASSWORD"}


def settings_variables(cls: type) -> set[str]:
    return {name.upper() for name in cls.model_fields}


def module_exists(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return (path / "__main__.py").exists() or path.with_suffix(".py").exists()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _module_of(command: list[str]) -> str | None:
    return command[2] if command[:2] == ["python", "-m"] else None


def test_compose_postgres_is_health_checked_with_a_named_volume(compose):
    pg = compose["services"]["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_compose_migration_is_one_shot_after_a_healthy_database(compose):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert (ROOT / "alembic.ini").exists() and (ROOT / "migrations" / "env.py").exists()
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    env_source = (ROOT / "migrations" / "env.py").read_text()
    for variable in migrate["environment"]:
        assert variable in MIGRATION_VARIABLES and variable in env_source


@pytest.mark.parametrize("service", ["auth", "transactions"])
def test_compose_services_match_the_code(compose, service):
    spec = compose["services"][service]
    module = _module_of(spec["command"])
    assert module in MODULES and module_exists(module)
    settings_cls, grpc_service, port_variable, default_port = MODULES[module]
    env = spec["environment"]
    unknown = set(env) - settings_variables(settings_cls)
    assert not unknown, f"{service} sets variables its settings do not read: {unknown}"
    port = int(env[port_variable])
    assert port == default_port
    assert f"${{BIND_ADDRESS:-127.0.0.1}}:{port}:{port}" in spec["ports"]  # this machine only by default
    test = spec["healthcheck"]["test"]
    assert test[1:4] == ["python", "-m", "payments_common.healthcheck"] and module_exists(test[3])
    assert test[4] == f"localhost:{port}" and test[5] == grpc_service
    assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert env["DATABASE_URL"].startswith("postgresql://payments_")


def test_compose_transaction_service_finds_the_auth_service(compose):
    tx = compose["services"]["transactions"]
    assert tx["environment"]["AUTH_SERVICE_ADDR"] == "auth:50051"
    assert tx["depends_on"]["auth"]["condition"] == "service_healthy"


def test_compose_requires_secrets_and_env_example_lists_every_variable(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert referenced <= example, referenced - example
    for secret in ("POSTGRES_PASSWORD", "AUTH_DB_PASSWORD", "TRANSACTION_DB_PASSWORD"):
        assert f"${{{secret}:?" in text


def test_dockerfile_is_multi_stage_non_root_and_generates_stubs():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    assert [name for _, name in stages] == ["base", "stubs", "build", "runtime"]
    assert all(image == "base" for image, _ in stages[1:])  # one base image, pinned in one place
    final = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001", final, re.M)
    assert "grpcio-tools" not in final and "gcc" not in final
    assert "COPY --from=stubs /src/payments ./payments" in text
    assert "scripts/gen_protos.py" in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source


def _manifests() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        docs += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and "kind" in d and d["kind"] != "Kustomization"
        ]
    return docs


def test_kubernetes_deployments_probe_the_health_service_the_code_serves():
    deployments = [d for d in _manifests() if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"auth", "transactions", "processing", "dashboard"}
    # the dashboard and the processing worker serve HTTP, not gRPC: tests/dashboard/test_deploy.py
    # and tests/platform/test_deploy_processing.py check their manifests
    for deployment in (d for d in deployments if d["metadata"]["name"] not in {"dashboard", "processing"}):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        module = _module_of(container["command"])
        assert module in MODULES and module_exists(module)
        settings_cls, grpc_service, port_variable, default_port = MODULES[module]
        grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
        env = {e["name"]: e for e in container["env"]}
        assert set(env) <= settings_variables(settings_cls)
        assert int(env[port_variable]["value"]) == grpc_port == default_port
        assert container["readinessProbe"]["grpc"] == {"port": grpc_port, "service": grpc_service}
        assert container["livenessProbe"]["grpc"] == {"port": grpc_port, "service": "liveness"}
        for secret in ("DATABASE_URL", "SECRET_KEY"):
            assert "value" not in env[secret] and "secretKeyRef" in env[secret]["valueFrom"]
        assert {"requests", "limits"} <= container["resources"].keys()
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_services_hpas_and_job_point_at_what_exists():
    docs = _manifests()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    for service in (d for d in docs if d["kind"] == "Service"):
        (container,) = deployments[service["metadata"]["name"]]["spec"]["template"]["spec"]["containers"]
        names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["alembic", "upgrade", "head"]


def test_health_check_command_reports_serving_and_liveness(auth_address):
    for service in (AUTH_SERVICE, "liveness"):
        result = subprocess.run(
            [sys.executable, "-m", "payments_common.healthcheck", auth_address, service],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "SERVING"


def test_health_check_command_fails_when_nothing_listens():
    result = subprocess.run(
        [sys.executable, "-m", "payments_common.healthcheck", f"127.0.0.1:{free_port()}", "--timeout", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "unhealthy" in result.stderr
