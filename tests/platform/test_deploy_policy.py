"""What the deploy files promise an operator, checked without an engine or cluster.

Pod Security "restricted" for every workload (scripts/check_pod_security.py, which `make validate`
also runs on the kustomize output), the gRPC services' availability settings, migrations that
cannot be skipped, an image built once from locked dependencies, and Compose on this machine only.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
import sys
import tomllib
import uuid
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import create_engine, pool, text

from payments_common import embedded
from tests.servers import AUTH_ROLE, ROOT, TX_ROLE

KUBERNETES = ROOT / "deploy" / "kubernetes"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
GRPC_SERVICES = {"auth": "auth-url", "transactions": "transaction-url"}  # their Secret keys


def _checker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "check_pod_security", ROOT / "scripts" / "check_pod_security.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pod_security = _checker()


def manifests() -> list[dict[str, Any]]:
    """Every resource `kubectl apply -k deploy/kubernetes` applies (the kustomization's files)."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((KUBERNETES / name).read_text())
        if doc
    ]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def pod_specs() -> list[dict[str, Any]]:
    return [pod for doc in manifests() for _, pod in pod_security.pod_templates(doc)]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get("matchExpressions")


# Pod Security Standard "restricted"


def test_every_manifest_is_in_the_kustomization():
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_workload_is_admissible_under_the_restricted_pod_security_standard():
    problems, checked = pod_security.check(manifests())
    assert problems == []
    assert checked == len(pod_specs()) >= 3  # both services and the migration Job at least


def _auth_deployment() -> dict[str, Any]:
    return copy.deepcopy(of_kind("Deployment")["auth"])


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return _pod(doc)["containers"][0]


def _init(doc: dict[str, Any]) -> dict[str, Any]:
    return _pod(doc)["initContainers"][0]


MUTATIONS = {
    "privileged": lambda d: _container(d)["securityContext"].update(privileged=True),
    "host network": lambda d: _pod(d).update(hostNetwork=True),
    "hostPath volume": lambda d: _pod(d)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "nfs volume": lambda d: _pod(d)["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
    "host port": lambda d: _container(d)["ports"][0].update(hostPort=50051),
    "unsafe sysctl": lambda d: _pod(d)["securityContext"].update(
        sysctls=[{"name": "kernel.msgmax", "value": "1"}]
    ),
    "escalation allowed": lambda d: _container(d)["securityContext"].pop("allowPrivilegeEscalation"),
    "escalation in an init container": lambda d: _init(d)["securityContext"].update(
        allowPrivilegeEscalation=True
    ),
    "capability added": lambda d: _container(d)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
    "capabilities kept": lambda d: _container(d)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
    "root allowed": lambda d: (
        _pod(d)["securityContext"].pop("runAsNonRoot"),
        _container(d)["securityContext"].pop("runAsNonRoot"),
    ),
    "root user": lambda d: _container(d)["securityContext"].update(runAsUser=0),
    "seccomp unconfined": lambda d: _container(d)["securityContext"].update(
        seccompProfile={"type": "Unconfined"}
    ),
    "no seccomp": lambda d: (
        _pod(d)["securityContext"].pop("seccompProfile"),
        _container(d)["securityContext"].pop("seccompProfile"),
    ),
    "writable root filesystem": lambda d: _container(d)["securityContext"].update(
        readOnlyRootFilesystem=False
    ),
    "service-account token": lambda d: _pod(d).pop("automountServiceAccountToken"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_policy_check_refuses_each_breach(mutation):
    deployment = _auth_deployment()
    MUTATIONS[mutation](deployment)
    problems, checked = pod_security.check([deployment])
    assert checked == 1 and len(problems) >= 1, mutation
    assert all(p.startswith("deployment/auth: ") for p in problems)


def test_the_policy_check_reads_cronjobs_and_bare_pods():
    pod = {"containers": [{"name": "c", "image": "x:1"}]}
    problems, checked = pod_security.check(
        [
            {"kind": "Pod", "metadata": {"name": "p"}, "spec": pod},
            {
                "kind": "CronJob",
                "metadata": {"name": "c"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
            },
        ]
    )
    assert (
        checked == 2
        and any(p.startswith("pod/p: ") for p in problems)
        and any(p.startswith("cronjob/c: ") for p in problems)
    )


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


# the image


def test_the_dockerfile_installs_locked_dependencies_before_the_source():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    build = lines[next(i for i, line in enumerate(lines) if line.startswith("FROM base AS build")) :]
    install = next(i for i, line in enumerate(build) if "-r requirements.lock" in line)
    assert "--require-hashes" in build[install] and "--no-deps" in build[install]
    assert build.index("COPY requirements.lock ./") < install
    first_source = next(
        i for i, line in enumerate(build) if re.match(r"COPY (pyproject|payments|auth|transaction)", line)
    )
    assert install < first_source  # a code change reuses the dependency layer
    assert any("pip install --no-cache-dir --no-deps . && pip check" in line for line in build)


def test_the_dockerfile_health_check_probes_the_default_service():
    text = (ROOT / "Dockerfile").read_text()
    (check,) = re.findall(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", text, re.M)
    assert yaml.safe_load(check) == ["python", "-m", "payments_common.healthcheck"]
    assert 'CMD ["python", "-m", "auth_service"]' in text  # the default it probes: localhost:50051


def _locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==([^ \\\n]+) \\$", text, re.M))
    assert text.count("--hash=sha256:") >= len(pins), "every pin has its hashes"
    return {canonicalize_name(name): version for name, version in pins.items()}


def test_the_lock_file_pins_every_dependency_of_pyproject():
    locked = _locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dependency.name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        assert dependency.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {name}=={locked[name]}, pyproject.toml {dependency}: run `make lock`"
        )
    # the extras' own dependencies come along
    assert {"cryptography", "argon2-cffi"} <= locked.keys()


# Compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_builds_the_image_once_and_every_service_runs_it(compose):
    ours = {
        n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("payments-grpc")
    }
    assert {"migrate", "auth", "transactions"} <= ours.keys()
    builders = [n for n, s in ours.items() if "build" in s]
    assert builders == ["migrate"]
    assert len({s["image"] for s in ours.values()}) == 1
    assert all(s["pull_policy"] == "never" for n, s in ours.items() if n not in builders)


def test_compose_publishes_ports_on_this_machine_only_by_default(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^BIND_ADDRESS=127\.0\.0\.1$", example, re.M)


def test_compose_services_run_hardened(compose):
    for name in ("migrate", "auth", "transactions"):
        service = compose["services"][name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_readme_says_compose_v2_is_required():
    deploy = (ROOT / "README.md").read_text().split("## Deploy", 1)[1]
    assert re.search(r"Compose v2", deploy) and "v1" in deploy


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
