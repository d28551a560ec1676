"""The README's sandbox example, pasted into a shell against the running sandbox, works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.processor.harness import Sandbox
from tests.servers import ROOT


def test_the_readme_curl_example_charges_and_looks_up(sandbox: Sandbox) -> None:
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "localhost:50060/v1/charges" in b]
    # the sandbox is already running (on its own port, with its own key): skip the start-up lines
    script = "\n".join(line for line in block.splitlines() if not line.startswith(("export ", "python ")))
    script = script.replace("localhost:50060", f"127.0.0.1:{sandbox.port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "SANDBOX_API_KEY": sandbox.api_key},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    charge, found, missing = answers(result.stdout)
    assert charge["status"] == "succeeded" and charge["reference"] == "tx_demo-1"
    assert found["id"] == charge["id"]
    assert missing["error"]["code"] == "resource_missing"


def answers(output: str) -> list[dict[str, Any]]:
    """The JSON objects curl printed back to back (`curl -s` adds no newline)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(output):
        value, at = decoder.raw_decode(output, at)
        found.append(value)
        while at < len(output) and output[at].isspace():
            at += 1
    return found
