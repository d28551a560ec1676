"""The image and Compose, checked without an engine.

The Dockerfile installs the locked dependencies (with their hashes) before the source and its
health check probes the default service; requirements.lock pins every dependency of
pyproject.toml; Compose builds the image once, runs it hardened and publishes ports on this
machine only by default, and the README says Compose v2 is required.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.servers import ROOT

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
