"""Shared by the deploy-policy tests: the manifests of deploy/kubernetes and the Pod Security checker.

`pod_security` is scripts/check_pod_security.py (which `make validate` also runs on the
kustomize output), loaded as a module; `manifests()` is every resource the kustomization applies.
tests/platform/test_deploy_processing_kubernetes.py uses the checker too.
"""

from __future__ import annotations

import importlib.util
import tomllib
from typing import Any

import yaml

from tests.servers import ROOT

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


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]
