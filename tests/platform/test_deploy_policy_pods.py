"""Pod Security "restricted" for every workload of deploy/kubernetes, checked without a cluster.

Every manifest is in the kustomization and every pod template passes
scripts/check_pod_security.py; the check refuses each kind of breach (privileged, host
namespaces and paths, capabilities, root, seccomp, a writable root filesystem, a mounted
service-account token) and reads CronJobs and bare Pods too.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.platform.deploy_checks import KUBERNETES, _pod, manifests, of_kind, pod_security, pod_specs

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
