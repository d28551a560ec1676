"""The README's watch examples, as pasted: grpcurl in two terminals, and the Python client's watch()."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from tests.helpers import Caller
from tests.stream.watching import payment

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # grpcurl comes with the dev extras


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def _watchers() -> float:
    return REGISTRY.get_sample_value("transaction_watchers") or 0.0


def _until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _snake(value: Any) -> Any:
    """JSON with proto field names, whether grpcurl printed those or their camelCase JSON names."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): _snake(item) for key, item in value.items()}
    return value


def _terminals(auth_address: str, tx_address: str, alice: Caller) -> tuple[str, str]:
    watch, pay = [b for b in re.findall(r"```bash\n(.*?)```", _readme(), re.S) if "# terminal " in b]
    assert watch.startswith("# terminal 1") and "WatchTransactions" in watch
    assert pay.startswith("# terminal 2") and "CreateTransaction" in pay

    def local(script: str) -> str:
        for old, new in [
            ("localhost:50051", auth_address),
            ("localhost:50052", tx_address),
            ("alice@example.com", alice.email),
            ("correct horse battery", alice.password),
            ("order-1002", f"order-{uuid.uuid4().hex[:8]}"),
        ]:
            script = script.replace(old, new)
        return script

    return local(watch), local(pay)


def test_the_grpcurl_watch_prints_the_payment_made_in_the_other_terminal(
    auth_address: str, stream_address: str, new_user: Callable[..., Caller]
) -> None:
    alice = new_user()
    watch, pay = _terminals(auth_address, stream_address, alice)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    live = _watchers()
    terminal_1 = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", watch],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its grpcurl is stopped with it
    )
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(terminal_1.stdout or ()), daemon=True)
    reader.start()
    try:
        _until(lambda: _watchers() > live or terminal_1.poll() is not None)  # the watch has started
        assert terminal_1.poll() is None, terminal_1.stderr.read() if terminal_1.stderr else ""
        terminal_2 = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", pay], env=env, capture_output=True, text=True, timeout=60
        )
        assert terminal_2.returncode == 0, terminal_2.stderr
        created = json.loads(terminal_2.stdout)["transaction"]["id"]
        _until(lambda: created in "".join(printed))
        _until(lambda: "\n}" in "".join(printed))  # the whole first object
    finally:
        os.killpg(terminal_1.pid, signal.SIGTERM)
        terminal_1.wait(10)
    text = "".join(printed)
    change = _snake(json.loads(text[: text.index("\n}") + 2]))
    assert change["new_status"] == "TRANSACTION_STATUS_PENDING"
    assert change["transaction"]["id"] == created and change["transaction"]["amount_minor"] == "450"
    assert change["resume_token"] and change["event_id"]


def test_the_python_watch_example_runs_as_written(
    auth_address: str,
    stream_address: str,
    stream_stub: Any,
    watch_principal: Caller,
    new_user: Callable[..., Caller],
) -> None:
    (example,) = re.findall(r"```py\n(.*?)```", _readme(), re.S)
    example = example.replace("localhost:50051", auth_address).replace("localhost:50052", stream_address)
    alice, saved = new_user(), []

    class Handled(Exception):
        """Ends the example's endless loop after the first change."""

    def save_checkpoint(token: str) -> None:
        saved.append(token)
        raise Handled

    prelude = {
        "client_id": watch_principal.email,
        "client_secret": watch_principal.password,
        "load_checkpoint": lambda: "",
        "save_checkpoint": save_checkpoint,
        "print": lambda *args: saved.append(" ".join(map(str, args))),
    }
    failures: list[BaseException] = []

    def run() -> None:
        try:
            exec(compile(example, "README.md", "exec"), prelude)  # noqa: S102 - the README's own example
        except Handled:
            pass
        except BaseException as err:
            failures.append(err)

    live = _watchers()
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    _until(lambda: _watchers() > live or bool(failures))
    made = payment(stream_stub, alice)
    runner.join(20)
    assert not runner.is_alive() and not failures, failures
    line, token = saved
    assert made.id in line and alice.id in line and "PENDING" in line
    assert token
