"""`buf breaking`: the contracts in protos/ (the work tree) against the previous main.

The baseline is the first of these that applies:
  1. the git revision in BUF_BREAKING_AGAINST;
  2. on a branch that has left origin/main: their merge-base, the main it started from;
  3. HEAD~1, the previous commit (in CI's fresh clone of main: what the last commit changed).
Uncommitted edits count, since the work tree is what is checked. With no baseline commit (a
history of one commit, or a shallow clone without HEAD~1) it says why and passes.

The rules are buf.yaml's (`breaking`: FILE). One exception: a file whose baseline sets no
`go_package` may set one, since no Go code can import a package that was never declared; once
a baseline has it, changing it is breaking like any other change.

    python scripts/buf_breaking.py             # make buf-breaking (part of make lint)
    BUF_BREAKING_AGAINST=v0.1.0 python scripts/buf_breaking.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"
GO_PACKAGE = re.compile(r"^\s*option\s+go_package\s*=", re.M)


def git(repo: Path, *args: str) -> str | None:
    """Output of a git command in `repo`, or None when it fails."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def commit(repo: Path, revision: str) -> str | None:
    return git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")


def baseline(repo: Path) -> tuple[str | None, str]:
    """(commit to compare against or None, what it is or why there is none)."""
    if git(repo, "rev-parse", "--is-inside-work-tree") != "true":
        return None, f"{repo} is not a git work tree"
    if wanted := os.environ.get("BUF_BREAKING_AGAINST"):
        found = commit(repo, wanted)
        if found is None:
            raise SystemExit(f"buf-breaking: BUF_BREAKING_AGAINST={wanted} is no commit here")
        return found, f"{wanted} (BUF_BREAKING_AGAINST)"
    head = commit(repo, "HEAD")
    if head is None:
        return None, "no commit yet"
    if commit(repo, "refs/remotes/origin/main") is not None:
        base = git(repo, "merge-base", "HEAD", "refs/remotes/origin/main")
        if base is not None and base != head:
            return base, f"origin/main's merge-base {base[:12]}"
    previous = commit(repo, "HEAD~1")
    if previous is not None:
        return previous, f"the previous commit HEAD~1 ({previous[:12]})"
    if git(repo, "rev-parse", "--is-shallow-repository") == "true":
        return None, "a shallow clone without HEAD~1 (git fetch --deepen=1 to check)"
    return None, "a history of one commit: no previous main"


def extract(repo: Path, revision: str, into: Path, config: str, protos: str) -> bool:
    """Write the baseline's buf.yaml and protos/ into `into`; False when it has no buf.yaml."""
    if git(repo, "cat-file", "-e", f"{revision}:{config}") is None:
        return False
    paths = [config] + ([protos] if git(repo, "cat-file", "-e", f"{revision}:{protos}") is not None else [])
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", revision, *paths], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return True


def module_paths(config: dict[str, object]) -> list[str]:
    modules = config.get("modules") or [{"path": "."}]
    assert isinstance(modules, list)
    return [str(module.get("path", ".")) for module in modules]


def new_go_packages(repo: Path, before: Path, config: dict[str, object]) -> list[str]:
    """Proto files (paths from the repo root) that set go_package now but not in the baseline."""
    found = []
    for module in module_paths(config):
        for now in sorted((repo / module).rglob("*.proto")):
            relative = now.relative_to(repo)
            old = before / relative
            if old.exists() and not GO_PACKAGE.search(old.read_text()) and GO_PACKAGE.search(now.read_text()):
                found.append(relative.as_posix())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repo", type=Path, default=ROOT, help="the git work tree to check (default: this one)"
    )
    repo = parser.parse_args().repo.resolve()
    if not BUF.exists():
        print(f"buf-breaking: {BUF} is missing: run `make buf` (npm ci)", file=sys.stderr)
        return 1
    revision, described = baseline(repo)
    if revision is None:
        print(f"buf-breaking: skipped: {described}")
        return 0
    config = yaml.safe_load((repo / "buf.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp)
        if not extract(repo, revision, before, "buf.yaml", "protos"):
            print(f"buf-breaking: skipped: {described} has no buf.yaml, so no contracts to compare")
            return 0
        args = [str(BUF), "breaking", ".", "--against", str(before)]
        if first_go_packages := new_go_packages(repo, before, config):
            breaking = config.setdefault("breaking", {})
            ignored = breaking.setdefault("ignore_only", {}).setdefault("FILE_SAME_GO_PACKAGE", [])
            ignored.extend(first_go_packages)
            args += ["--config", json.dumps(config)]
            listed = ", ".join(first_go_packages)
            print(f"buf-breaking: go_package set for the first time (not breaking): {listed}")
        result = subprocess.run(args, cwd=repo)
    if result.returncode != 0:
        print(
            f"buf-breaking: protos/ break compatibility with {described}, by buf.yaml's breaking rules.\n"
            "A released contract only grows: add new fields, values and methods, and reserve removed\n"
            "numbers and names; an incompatible change belongs in a new package version (v2).",
            file=sys.stderr,
        )
        return 1
    print(f"buf-breaking: protos/ compatible with {described}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
