"""The worker in deploy/kubernetes and the sandbox in the dev overlay (deploy/kubernetes-overlays/dev)
match their code; `make validate` renders both trees and checks them against the schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.platform.deploy_checks import pod_security
from tests.platform.deploy_processing import (
    DEV,
    KUBERNETES,
    SANDBOX_MODULE,
    SANDBOX_VARIABLES,
    VERSION,
    WORKER_MODULE,
    WORKER_VARIABLES,
    _container,
    _docs,
    _env,
    _one,
    _secret_ref,
)
from transaction_service.processing.settings import ProcessingSettings


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert "processing.yaml" in kustomization["resources"]
    return [doc for name in kustomization["resources"] for doc in _docs(KUBERNETES / name)]


def test_the_base_has_no_sandbox(base):
    for doc in base:
        assert "sandbox" not in doc["metadata"]["name"]
        for _, pod in pod_security.pod_templates(doc):
            for container in pod["containers"]:
                assert SANDBOX_MODULE not in container["command"]


def test_the_worker_deployment_matches_its_code(base):
    deployment = _one(base, "Deployment", "processing")
    assert deployment["spec"]["replicas"] == 2
    container = _container(deployment)
    assert container["command"] == ["python", "-m", WORKER_MODULE]
    assert container["image"] == f"payments-grpc:{VERSION}"
    env = _env(container)
    assert set(env) <= WORKER_VARIABLES, set(env) - WORKER_VARIABLES
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "webhooks": int(env["WEBHOOK_PORT"]["value"]),
        "metrics": int(env["PROCESSING_METRICS_PORT"]["value"]),
    }
    assert ports["webhooks"] == ProcessingSettings.model_fields["webhook_port"].default
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "webhooks"}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "webhooks"}
    assert _secret_ref(env["DATABASE_URL"]) == ("payments-db", "transaction-url")
    assert _secret_ref(env["PROCESSOR_URL"]) == ("payments-processor", "url")
    assert _secret_ref(env["PROCESSOR_API_KEY"]) == ("payments-processor", "api-key")
    assert _secret_ref(env["PROCESSOR_WEBHOOK_SECRET"]) == ("payments-processor", "webhook-secret")
    transactions = _env(_container(_one(base, "Deployment", "transactions")))
    assert transactions["PAYMENT_PROCESSOR"]["value"] == env["PAYMENT_PROCESSOR"]["value"]


def test_the_worker_waits_for_the_schema_drains_and_spreads(base):
    deployment = _one(base, "Deployment", "processing")
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][:4] == ["python", "-m", "payments_common.schema", "--wait"]
    assert _secret_ref(_env(init)["DATABASE_URL"]) == ("payments-db", "transaction-url")
    assert init["image"] == _container(deployment)["image"]
    pre_stop = _container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + 3 + 10  # HTTP drain + jobs in flight
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= spread
    budget = _one(base, "PodDisruptionBudget", "processing")
    assert budget["spec"]["maxUnavailable"] == 1
    service = _one(base, "Service", "processing")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"webhooks", "metrics"}


def test_the_worker_network_policy(base):
    policy = _one(base, "NetworkPolicy", "processing")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}
    assert rules["metrics"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    (webhooks,) = rules["webhooks"]
    assert set(webhooks) == {"namespaceSelector"}  # the ingress controller's namespace, not everyone
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}


# Kubernetes: the dev overlay


@pytest.fixture(scope="module")
def dev() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEV / "kustomization.yaml").read_text())
    (base_dir, *files) = kustomization["resources"]
    assert (DEV / base_dir).resolve() == KUBERNETES
    return [doc for name in files for doc in _docs(DEV / name)]


def test_every_file_of_the_dev_overlay_is_in_its_kustomization():
    kustomization = yaml.safe_load((DEV / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"][1:]) | {p["path"] for p in kustomization["patches"]}
    assert listed == {p.name for p in DEV.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_dev_sandbox_matches_its_code_and_keeps_its_data(dev):
    deployment = _one(dev, "Deployment", "sandbox")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["command"] == ["python", "-m", SANDBOX_MODULE]
    assert container["image"] == f"payments-grpc:{VERSION}"
    env = _env(container)
    assert set(env) <= SANDBOX_VARIABLES, set(env) - SANDBOX_VARIABLES
    assert env["SANDBOX_HOST"]["value"] == "0.0.0.0"
    (port,) = container["ports"]
    assert port == {"name": "api", "containerPort": int(env["SANDBOX_PORT"]["value"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "api"}
    # the SQLite file on the claim, writable for the user
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    (volume,) = claims
    assert Path(env["SANDBOX_DB_PATH"]["value"]).parent == Path(mounts[volume])
    assert _one(dev, "PersistentVolumeClaim", claims[volume])["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    problems, checked = pod_security.check([deployment])
    assert checked == 1 and problems == []


def test_the_dev_sandbox_and_worker_share_the_secret_and_find_each_other(base, dev):
    worker = _env(_container(_one(base, "Deployment", "processing")))
    sandbox = _env(_container(_one(dev, "Deployment", "sandbox")))
    assert _secret_ref(sandbox["SANDBOX_API_KEY"]) == _secret_ref(worker["PROCESSOR_API_KEY"])
    assert _secret_ref(sandbox["SANDBOX_WEBHOOK_SECRET"]) == _secret_ref(worker["PROCESSOR_WEBHOOK_SECRET"])
    assert sandbox["SANDBOX_WEBHOOK_URL"]["value"] == (
        f"http://processing:{worker['WEBHOOK_PORT']['value']}/webhooks/{worker['PAYMENT_PROCESSOR']['value']}"
    )
    kustomization = yaml.safe_load((DEV / "kustomization.yaml").read_text())
    (patch,) = [_docs(DEV / p["path"])[0] for p in kustomization["patches"]]
    assert patch["kind"] == "Deployment" and patch["metadata"]["name"] == "processing"
    (url,) = _container(patch)["env"]
    assert url == {
        "name": "PROCESSOR_URL",
        "value": f"http://sandbox:{sandbox['SANDBOX_PORT']['value']}",
        "valueFrom": None,  # drops the base's reference to the Secret
    }
    service = _one(dev, "Service", "sandbox")
    assert [p["port"] for p in service["spec"]["ports"]] == [int(sandbox["SANDBOX_PORT"]["value"])]
