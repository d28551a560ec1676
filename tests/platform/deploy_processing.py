"""Shared by the deploy-file tests of the processing worker and the sandbox processor.

docker-compose.yml runs both; deploy/kubernetes runs the worker, and the dev overlay
(deploy/kubernetes-overlays/dev) adds the sandbox. Without an engine or a cluster these check every
module, variable, port, probe path and secret they name, and run the compose health checks (which
cannot use curl: the image has none) against a real HTTP server. `make validate` renders both
Kubernetes trees with kustomize and checks them against the API schemas and Pod Security.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from sandbox_processor.config import ENV_PREFIX, SandboxSettings
from tests.servers import ROOT
from transaction_service.processing.settings import ProcessingSettings

KUBERNETES = ROOT / "deploy" / "kubernetes"
DEV = ROOT / "deploy" / "kubernetes-overlays" / "dev"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WORKER_VARIABLES = {name.upper() for name in ProcessingSettings.model_fields}
SANDBOX_VARIABLES = {ENV_PREFIX + name.upper() for name in SandboxSettings.model_fields}
WORKER_MODULE = "transaction_service.processing"
SANDBOX_MODULE = "sandbox_processor"


def _module_exists(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__main__.py").exists()


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _secret_ref(entry: dict[str, Any]) -> tuple[str, str]:
    assert "value" not in entry, f"{entry['name']} is inlined"
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


# the HTTP endpoints the probes and health checks name
