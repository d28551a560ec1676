"""`make buf-breaking` (scripts/buf_breaking.py) fails on a breaking change and only then.

Each test builds a git repository of its own from a copy of buf.yaml and protos/, commits a
change on top (or leaves it in the work tree) and runs the script on it with the real buf.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT

SCRIPT = ROOT / "scripts" / "buf_breaking.py"
BUF = ROOT / "node_modules" / ".bin" / "buf"
AUTH = Path("protos/payments/auth/v1/auth.proto")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

pytestmark = pytest.mark.skipif(not BUF.exists(), reason="no buf CLI: `make buf` installs it (npm ci)")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def check(repo: Path, against: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "BUF_BREAKING_AGAINST"}
    if against is not None:
        env["BUF_BREAKING_AGAINST"] = against
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--repo", str(repo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def edit(repo: Path, path: Path, old: str, new: str) -> None:
    text = (repo / path).read_text()
    assert old in text, f"{old!r} not in {path}"
    (repo / path).write_text(text.replace(old, new, 1))


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository of one commit: today's contracts."""
    repo = tmp_path / "contracts"
    repo.mkdir()
    shutil.copy(ROOT / "buf.yaml", repo / "buf.yaml")
    shutil.copytree(ROOT / "protos", repo / "protos")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "contracts")
    return repo


def test_a_single_commit_has_no_previous_main_and_is_skipped(repo):
    result = check(repo)
    assert result.returncode == 0, result.stderr
    assert "skipped: a history of one commit" in result.stdout


def test_a_renamed_field_in_the_last_commit_fails(repo):
    edit(repo, AUTH, "string full_name = 3;", "string display_name = 3;")
    commit_all(repo, "rename a field")
    result = check(repo)
    assert result.returncode == 1, result.stdout
    assert re.search(
        r'auth\.proto:\d+:\d+:Field "3" .*changed name from "full_name" to "display_name"', result.stdout
    )
    assert "break compatibility with the previous commit HEAD~1" in result.stderr


def test_an_uncommitted_deleted_field_fails(repo):
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    assert check(repo).returncode == 0
    edit(repo, AUTH, "  string full_name = 3;\n", "")  # the work tree is checked, committed or not
    result = check(repo)
    assert result.returncode == 1 and 'Previously present field "3" with name "full_name"' in result.stdout


def test_added_fields_values_and_methods_pass(repo):
    edit(repo, AUTH, "string full_name = 3;", "string full_name = 3;\n  string nickname = 99;")
    edit(repo, AUTH, "ROLE_ADMIN = 2;", "ROLE_ADMIN = 2;\n  ROLE_AUDITOR = 3;")
    commit_all(repo, "grow the contract")
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compatible with the previous commit HEAD~1" in result.stdout


def test_go_package_may_be_set_once_then_never_changed(repo):
    for path in repo.joinpath("protos").rglob("*.proto"):  # a baseline from before go_package
        path.write_text(re.sub(r"^option go_package = .*\n", "", path.read_text(), flags=re.M))
    commit_all(repo, "without go_package")
    shutil.copytree(ROOT / "protos", repo / "protos", dirs_exist_ok=True)
    commit_all(repo, "with go_package")
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "go_package set for the first time (not breaking): protos/payments/auth/v1/auth.proto"
        in result.stdout
    )
    edit(repo, AUTH, "/auth/v1;authv1", "/authv1;authv1")
    commit_all(repo, "move the Go package")
    result = check(repo)
    assert result.returncode == 1 and 'File option "go_package" changed from' in result.stdout


def test_a_branch_is_checked_against_its_merge_base_with_origin_main(repo, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    edit(clone, AUTH, "string full_name = 3;", "string display_name = 3;")
    commit_all(clone, "rename a field")
    edit(clone, AUTH, "string email = 2;", "string email = 2;\n  string nickname = 99;")
    commit_all(clone, "a compatible commit on top: HEAD~1 alone would pass")
    result = check(clone)
    assert result.returncode == 1 and "changed name from" in result.stdout
    assert "origin/main's merge-base" in result.stderr


def test_a_shallow_clone_without_the_previous_commit_is_skipped(repo, tmp_path):
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    result = check(shallow)
    assert result.returncode == 0, result.stderr
    assert "skipped: a shallow clone without HEAD~1" in result.stdout


def test_an_explicit_baseline_and_one_without_contracts(repo):
    first = git(repo, "rev-parse", "HEAD").strip()
    edit(repo, AUTH, "string full_name = 3;", "string display_name = 3;")
    commit_all(repo, "rename a field")
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    assert check(repo).returncode == 0  # HEAD~1 already has the rename
    result = check(repo, against=first)
    assert result.returncode == 1 and "(BUF_BREAKING_AGAINST)" in result.stderr
    empty_tree = git(repo, "hash-object", "-w", "-t", "tree", os.devnull).strip()
    empty = git(repo, "commit-tree", "-m", "before the contracts", empty_tree).strip()
    result = check(repo, against=empty)
    assert result.returncode == 0 and "has no buf.yaml" in result.stdout
