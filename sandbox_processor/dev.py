"""Starting the sandbox from the dev runner (`scripts/run_dev.py`, i.e. `make run`).

The dev secrets below are fixed and public on purpose, like the dev admin's password: they exist
only for a sandbox on the developer's machine. This function writes them into the runner's
environment, so any service started after it (the transaction service, once it submits payments)
reads the same values.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_API_KEY = "sk_test_dev_sandbox_only"
DEV_WEBHOOK_SECRET = "whsec_dev_sandbox_only"


def dev_db_path(env: dict[str, str], root: Path = ROOT) -> Path:
    """The dev sandbox's file: beside the dev database, so a runner with its own PAYMENTS_DATA_DIR
    (a test, a second checkout) never shares the developer's charges.
    """
    data_dir = env.get("PAYMENTS_DATA_DIR")
    if data_dir:
        return Path(f"{data_dir.rstrip('/')}-sandbox") / "sandbox.sqlite3"
    return root / ".data" / "sandbox" / "sandbox.sqlite3"


def start_for_dev(env: dict[str, str], root: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start `python -m sandbox_processor` and return it without waiting.

    Fills `env` (the runner's, shared with the services it starts next) with the dev API key,
    webhook secret and data file unless they are already set, so the transaction service and the
    sandbox agree. It does not wait for readiness: the runner's loop notices if it dies.
    """
    env.setdefault("SANDBOX_API_KEY", DEV_API_KEY)
    env.setdefault("SANDBOX_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)
    env.setdefault("SANDBOX_DB_PATH", str(dev_db_path(env, root)))
    port = env.get("SANDBOX_PORT", "50060")
    key = DEV_API_KEY if env["SANDBOX_API_KEY"] == DEV_API_KEY else "$SANDBOX_API_KEY"  # only the dev key
    print(f"sandbox processor starting on http://localhost:{port} (API key {key})", flush=True)
    return subprocess.Popen([sys.executable, "-m", "sandbox_processor"], cwd=root, env=env)
