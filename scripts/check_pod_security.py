"""Check Kubernetes manifests against the Pod Security Standard "restricted", and our own rules.

`python scripts/check_pod_security.py rendered.yaml [...]` (`make validate` feeds it the output of
`kubectl kustomize deploy/kubernetes`) prints one line per violation and exits 1 if there is any.
There is no cluster here to ask its admission controller, so this applies the controls of
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the "latest" version: every
baseline control, then every restricted one) to each pod template: Deployments, StatefulSets,
DaemonSets, ReplicaSets, Jobs, CronJobs and Pods, init and ephemeral containers included.
Our own rules come on top: a read-only root filesystem and no service-account token.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

# baseline
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# restricted
VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret",
}  # fmt: skip
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod metadata, pod spec) of a manifest that makes pods; nothing for other kinds."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        yield doc.get("metadata") or {}, spec
    elif kind in WORKLOADS:
        template = spec.get("template") or {}
        yield template.get("metadata") or {}, template.get("spec") or {}
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        yield template.get("metadata") or {}, template.get("spec") or {}


def containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(key) or []:
            yield f"{key[:-1]} {container.get('name')}", container


def violations(metadata: dict[str, Any], pod: dict[str, Any]) -> Iterator[str]:
    """Each control this pod template breaks, as '<where>: <what> (<standard>)'."""
    pod_sc = pod.get("securityContext") or {}
    # baseline
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            yield f"pod: {key} (baseline: host namespaces)"
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        yield "pod: windowsOptions.hostProcess (baseline: HostProcess)"
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            yield f"volume {volume.get('name')}: hostPath (baseline: HostPath volumes)"
        elif not kinds <= VOLUME_TYPES:
            yield f"volume {volume.get('name')}: {', '.join(sorted(kinds))} (restricted: volume types)"
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"pod: sysctl {sysctl.get('name')} (baseline: sysctls)"
    for key, value in (metadata.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            yield f"pod: AppArmor annotation {value} (baseline: AppArmor)"
    yield from _selinux_and_apparmor("pod", pod_sc)
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_TYPES:
        yield f"pod: seccompProfile {pod_seccomp} (restricted: seccomp)"
    if pod_sc.get("runAsNonRoot") is False:
        yield "pod: runAsNonRoot false (restricted: running as non-root)"
    if pod_sc.get("runAsUser") == 0:
        yield "pod: runAsUser 0 (restricted: running as non-root user)"
    # project policy
    if pod.get("automountServiceAccountToken") is not False:
        yield "pod: automountServiceAccountToken is not false (project: no API credentials in pods)"
    for where, container in containers(pod):
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            yield f"{where}: privileged (baseline: privileged containers)"
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            yield f"{where}: windowsOptions.hostProcess (baseline: HostProcess)"
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                yield f"{where}: hostPort {port['hostPort']} (baseline: host ports)"
        if sc.get("procMount", "Default") != "Default":
            yield f"{where}: procMount {sc['procMount']} (baseline: /proc mount type)"
        yield from _selinux_and_apparmor(where, sc)
        capabilities = sc.get("capabilities") or {}
        added = set(capabilities.get("add") or [])
        if not added <= BASELINE_CAPABILITIES:
            yield f"{where}: adds {', '.join(sorted(added - BASELINE_CAPABILITIES))} (baseline: capabilities)"
        if not added <= {"NET_BIND_SERVICE"}:
            yield f"{where}: adds {', '.join(sorted(added))} (restricted: capabilities)"
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"{where}: does not drop ALL capabilities (restricted: capabilities)"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{where}: allowPrivilegeEscalation is not false (restricted: privilege escalation)"
        if sc.get("runAsNonRoot") is False or (
            sc.get("runAsNonRoot") is not True and pod_sc.get("runAsNonRoot") is not True
        ):
            yield f"{where}: runAsNonRoot is not true here or on the pod (restricted: running as non-root)"
        if sc.get("runAsUser") == 0:
            yield f"{where}: runAsUser 0 (restricted: running as non-root user)"
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_TYPES:
            yield f"{where}: seccompProfile {seccomp} (restricted: seccomp)"
        if seccomp is None and pod_seccomp is None:
            yield f"{where}: no seccompProfile here or on the pod (restricted: seccomp)"
        if sc.get("readOnlyRootFilesystem") is not True:
            yield f"{where}: readOnlyRootFilesystem is not true (project: read-only root filesystem)"


def _selinux_and_apparmor(where: str, sc: dict[str, Any]) -> Iterator[str]:
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        yield f"{where}: seLinuxOptions {selinux} (baseline: SELinux)"
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in {"RuntimeDefault", "Localhost"}:
        yield f"{where}: appArmorProfile {apparmor} (baseline: AppArmor)"


def check(documents: Iterable[dict[str, Any]]) -> tuple[list[str], int]:
    """All violations as 'kind/name: …', and how many pod templates were checked."""
    problems: list[str] = []
    checked = 0
    for doc in documents:
        name = f"{str(doc.get('kind')).lower()}/{(doc.get('metadata') or {}).get('name')}"
        for metadata, pod in pod_templates(doc):
            checked += 1
            problems += [f"{name}: {v}" for v in violations(metadata, pod)]
    return problems, checked


def main(argv: list[str]) -> int:
    """Check the files named on the command line (multi-document YAML)."""
    docs = [d for path in argv for d in yaml.safe_load_all(Path(path).read_text()) if isinstance(d, dict)]
    problems, checked = check(docs)
    for problem in problems:
        print(problem)
    if not checked:
        print("no pod templates found")
        return 1
    verdict = f"{len(problems)} violation(s)" if problems else "all admissible"
    print(f'Pod Security Standard "restricted" (+ project rules): {checked} pod templates, {verdict}')
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
