"""The wheel carries the type information: py.typed in the client and stub packages, and the stubs' .pyi.

Built for real (pip wheel, setuptools from the dev environment) from a copy of the packaged
sources, so that users' type checkers see `payments_client` and `payments` typed (PEP 561).
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.servers import ROOT


def test_the_wheel_ships_py_typed_and_the_stub_types(tmp_path: Path):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for directory in ROOT.iterdir():
        if (directory / "__init__.py").exists() and any(fnmatch.fnmatch(directory.name, p) for p in patterns):
            shutil.copytree(directory, source / directory.name, ignore=shutil.ignore_patterns("__pycache__"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert {"payments/py.typed", "payments_client/py.typed"} <= shipped
    stubs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "payments").rglob("*.pyi")}
    assert stubs and stubs <= shipped, "every generated .pyi is in the wheel"
