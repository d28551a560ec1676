"""The dashboard in `make run` (scripts/run_dev.py): start it beside the services and wait for it.

The runner passes its environment and the ports it gave the services; the dashboard gets a
session secret made for this run when none is set (its sessions live in memory, so they end with
the run anyway). Its own port is read like the dashboard reads it: environment, then `.env`.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class _Port(BaseSettings):
    """Only DASHBOARD_PORT (the full settings would insist on the secret)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    dashboard_port: int = Field(default=8080, ge=0, le=65535)


def port() -> int:
    """The port the dashboard will listen on."""
    return _Port().dashboard_port


def dashboard_env(env: Mapping[str, str], *, auth_port: int, tx_port: int) -> dict[str, str]:
    """The runner's environment, pointed at the runner's services."""
    out = dict(env)
    out["AUTH_SERVICE_ADDR"] = f"localhost:{auth_port}"
    out["TRANSACTION_SERVICE_ADDR"] = f"localhost:{tx_port}"
    if not out.get("DASHBOARD_SESSION_SECRET"):
        out["DASHBOARD_SESSION_SECRET"] = secrets.token_hex(32)
    return out


def start(
    env: Mapping[str, str], *, auth_port: int, tx_port: int, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`python -m dashboard` as a child of the runner (stopped by its SIGTERM like the services)."""
    child_env = dashboard_env(env, auth_port=auth_port, tx_port=tx_port)
    return subprocess.Popen([sys.executable, "-m", "dashboard"], cwd=root, env=child_env)


def wait_ready(timeout: float = 30.0) -> int:
    """Block until the dashboard answers /healthz and return its port; SystemExit after `timeout`."""
    listening = port()
    address = f"http://127.0.0.1:{listening}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(address, timeout=1) as reply:
                if reply.status == 200:
                    return listening
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the dashboard at {address} did not answer within {timeout:.0f}s")


def usage(listening: int) -> str:
    """The line the runner prints once everything is up."""
    return f"  dashboard: http://localhost:{listening}/ (log in with any user of the auth service)"
