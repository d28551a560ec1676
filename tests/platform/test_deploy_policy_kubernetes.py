"""What deploy/kubernetes promises an operator, checked without a cluster.

Images are the release tag, never `latest`; the migration Job runs alembic for this release and
each service pod waits for the schema at head before it starts (the schema check itself run on
a real PostgreSQL); the gRPC services start, drain and spread, are headless for client-side
round robin, and are open to the namespace while their metrics are open to monitoring only.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest
import yaml
from sqlalchemy import create_engine, pool, text

from payments_common import embedded
from tests.platform.deploy_checks import GRPC_SERVICES, KUBERNETES, VERSION, _pod, of_kind, pod_specs, selects
from tests.servers import AUTH_ROLE, ROOT, TX_ROLE

# images and migrations


def test_images_are_the_release_tag_never_latest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert {"name": "payments-grpc", "newTag": VERSION} in kustomization["images"]
    for pod in pod_specs():
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            image = container["image"]
            assert "@sha256:" in image or re.fullmatch(r"[^:]+:(?!latest$)[\w.-]+", image), image
            if image.startswith("payments-grpc"):
                assert image == f"payments-grpc:{VERSION}"


def test_the_migration_job_carries_the_release_version_and_runs_alembic():
    (job,) = of_kind("Job").values()
    assert job["metadata"]["name"] == f"payments-migrate-{VERSION}"
    (container,) = _pod(job)["containers"]
    assert container["command"] == ["alembic", "upgrade", "head"]


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_a_service_pod_waits_for_the_schema_at_head_before_it_starts(name):
    secret_key = GRPC_SERVICES[name]
    pod = _pod(of_kind("Deployment")[name])
    (init,) = pod["initContainers"]
    assert init["command"][:4] == ["python", "-m", "payments_common.schema", "--wait"]
    assert (ROOT / "payments_common" / "schema.py").exists()
    (url,) = [e for e in init["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "payments-db", "key": secret_key}  # its own role
    assert init["image"] == pod["containers"][0]["image"]  # the migrations it compares with


# availability


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_a_grpc_service_starts_drains_and_spreads(name):
    deployment = of_kind("Deployment")[name]
    pod, labels = _pod(deployment), deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = pod["containers"]
    assert container["startupProbe"]["grpc"]["service"] == "liveness"
    env = {e["name"]: e.get("value") for e in container["env"]}
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + float(env["SHUTDOWN_GRACE_SECONDS"])
    assert "GRPC_MAX_CONNECTION_AGE_SECONDS" in env
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= spread.keys()
    assert all(selects(c["labelSelector"], labels) for c in spread.values())
    (budget,) = [b for b in of_kind("PodDisruptionBudget").values() if selects(b["spec"]["selector"], labels)]
    assert budget["spec"].get("maxUnavailable") == 1 or budget["spec"].get("minAvailable") == 1


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_a_grpc_service_is_headless_for_client_side_round_robin(name):
    service = of_kind("Service")[name]
    assert service["spec"]["clusterIP"] == "None"
    assert {"name": "grpc", "port": {"auth": 50051, "transactions": 50052}[name]}.items() <= service["spec"][
        "ports"
    ][0].items()


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_is_open_to_the_namespace_and_metrics_to_monitoring_only(name):
    labels = of_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    (policy,) = [p for p in of_kind("NetworkPolicy").values() if selects(p["spec"]["podSelector"], labels)]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert rules == {
        "grpc": [{"podSelector": {}}],
        "metrics": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }


# the schema check of the init containers, on a real PostgreSQL


def _schema_check(url: str, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payments_common.schema", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "DATABASE_ROLE": role},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("role", [AUTH_ROLE, TX_ROLE])
def test_the_schema_check_passes_at_head_as_a_service_role(database_url, role):
    result = _schema_check(database_url, role)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("schema at head ")


def test_the_schema_check_waits_while_a_migration_is_missing(pg_server_url):
    name = f"payments_schema_{uuid.uuid4().hex[:10]}"
    embedded.ensure_database(pg_server_url, name)
    url = embedded.with_database(pg_server_url, name)
    alembic = [sys.executable, "-m", "alembic"]
    try:
        subprocess.run(
            [*alembic, "-x", f"url={url}", "upgrade", "0002"], cwd=ROOT, check=True, capture_output=True
        )
        behind = _schema_check(url, AUTH_ROLE, "--wait", "1", "--interval", "0.3")
        assert behind.returncode == 1
        assert "waiting for migrations: database at 0002, this build needs" in behind.stdout
        subprocess.run(
            [*alembic, "-x", f"url={url}", "upgrade", "head"], cwd=ROOT, check=True, capture_output=True
        )
        assert _schema_check(url, AUTH_ROLE, "--wait", "5").returncode == 0
    finally:
        admin = create_engine(pg_server_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
