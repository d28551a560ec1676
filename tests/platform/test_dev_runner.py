"""`make run`: embedded PostgreSQL, migrations, both services, a dev admin; Ctrl-C stops it all.

Driven through `make run` as a developer does, in a session of its own (a terminal's foreground
job), and stopped as a terminal stops it: SIGINT to the whole process group (make, the runner
and both services at once).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers import free_port
from tests.processing.harness import EXPECTED_OUTCOMES, outcomes
from tests.servers import FAST_HASH_ENV, ROOT

READY_SECONDS = 120  # the first run creates the database cluster and migrates it
STOP_SECONDS = 8  # the services drain in well under a second; PostgreSQL stops after them
RUNS = 3  # the race seen before hung a service in about half the runs
DATABASE_VARIABLES = {"DATABASE_URL", "TEST_DATABASE_URL", "DATABASE_ROLE"}  # unset: the dev database


@dataclass
class DevRun:
    """One `make run`, its output gathered by a thread so that a hang cannot block the test."""

    proc: subprocess.Popen[str]
    auth_port: int
    tx_port: int
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, data: Path) -> DevRun:
        auth_port, tx_port = free_port(), free_port()
        env = {
            k: v for k, v in os.environ.items() if k not in {*DATABASE_VARIABLES, "MAKEFLAGS", "MAKELEVEL"}
        }
        env.update(
            PAYMENTS_DATA_DIR=str(data),
            AUTH_PORT=str(auth_port),
            TRANSACTION_PORT=str(tx_port),
            SANDBOX_PORT=str(free_port()),
            DASHBOARD_PORT=str(free_port()),
            WEBHOOK_PORT=str(free_port()),
            PROCESSING_METRICS_PORT=str(free_port()),
            # wrong on purpose: the runner derives the address from AUTH_PORT
            AUTH_SERVICE_ADDR="localhost:1",
            **FAST_HASH_ENV,
        )
        proc = subprocess.Popen(
            ["make", "-s", "--no-print-directory", "run", f"VENV={sys.prefix}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        run = cls(proc, auth_port, tx_port)
        threading.Thread(target=run._pump, daemon=True).start()
        run.wait_for("press Ctrl-C", READY_SECONDS)
        return run

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"`make run` never printed {text!r}:\n{self.output}")
            time.sleep(0.05)

    def ctrl_c(self) -> float:
        """SIGINT to the process group, as a terminal sends it; the seconds until make exited."""
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            state = self.kill()
            raise AssertionError(
                f"not stopped {STOP_SECONDS} s after Ctrl-C: {state}\n{self.output}"
            ) from None
        time.sleep(0.2)  # the pump's last lines
        return time.monotonic() - started

    def kill(self) -> str:
        """Kill the runner and its services; say what each was doing (for the failure message)."""
        import psutil

        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            state = "; ".join(f"{p.pid} {p.status()} {' '.join(p.cmdline()[-3:])}" for p in procs)
        except psutil.Error as err:
            state = f"unknown ({err})"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session's group: make, runner, services
        self.proc.wait()
        return state


@pytest.fixture(scope="module")
def dev_data() -> Iterator[Path]:
    """One dev database for the module, as a developer's checkout has one.

    Not under pytest's tmp_path: the embedded server runs as a user of its own, which needs to
    reach the folder, and each pytest session makes its base folder private again.
    """
    folder = Path(tempfile.mkdtemp(prefix="payments-dev-"))
    yield folder / "pg"
    shutil.rmtree(folder, ignore_errors=True)


def _assert_stopped_cleanly(run: DevRun, seconds: float) -> None:
    assert "all services stopped" in run.output, run.output
    assert "did not stop within" not in run.output and "exited with status" not in run.output, run.output
    for service in ("auth_service", "transaction_service"):
        assert re.search(rf'"msg": "stopped", "service": "{service}"', run.output), (service, run.output)
    assert seconds < STOP_SECONDS


def test_ctrl_c_stops_make_run_within_seconds_every_time(dev_data):
    for attempt in range(RUNS):
        run = DevRun.start(dev_data)
        seconds = run.ctrl_c()
        _assert_stopped_cleanly(run, seconds)
        print(f"run {attempt + 1}: stopped {seconds:.1f} s after Ctrl-C")


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    """A `python -m auth_service` command as a developer types it next to `make run`: no set-up."""
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "auth_service", *args],
        cwd=ROOT,
        env={**env, "PAYMENTS_DATA_DIR": str(data)},  # the test's stand-in for .data/postgres
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_run_serves_the_dev_admin_the_readme_example_and_every_cli_command(dev_data):
    from payments_client import ServiceLogin, connect

    run = DevRun.start(dev_data)
    try:
        assert f"grpcurl -plaintext localhost:{run.auth_port} list" in run.output
        with grpc.insecure_channel(f"localhost:{run.auth_port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            credentials = auth_pb2.PasswordCredentials(
                email="admin@payments.local", password="dev-admin-password"
            )
            tokens = stub.Login(auth_pb2.LoginRequest(password=credentials)).tokens
            me = stub.GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(),
                metadata=(("authorization", f"Bearer {tokens.access_token}"),),
            ).user
        assert auth_pb2.ROLE_ADMIN in me.roles

        # the README's Python block as pasted (but for the ports): the transaction service verifies
        # the dev admin's token with keys from the auth address the runner derived from AUTH_PORT
        (example,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
        example = example.replace("localhost:50051", f"localhost:{run.auth_port}")
        example = example.replace("localhost:50052", f"localhost:{run.tx_port}")
        pasted = subprocess.run(
            [sys.executable, "-c", example], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert pasted.returncode == 0, pasted.stderr
        created, listed = pasted.stdout.splitlines()
        payment_id = created.split()[0]
        assert created == f"{payment_id} PENDING" and listed == f"{payment_id} 1250 COMPLETED", pasted.stdout
        # `make run` wires the processor flow: the sandbox decides, by webhook too
        assert outcomes(f"localhost:{run.tx_port}", tokens.access_token) == EXPECTED_OUTCOMES, run.output

        # every admin command of the CLI, with DATABASE_URL unset, reaches the running dev database
        commands = re.search(r"\{([a-z,-]+)\}", _cli("--help", data=dev_data).stdout).group(1).split(",")
        assert set(commands) - {"serve"} == {"create-admin", "create-service-principal", "rotate-keys"}
        admin = _cli("create-admin", "--email", "ops@payments.local", data=dev_data)
        assert admin.returncode == 0 and "created admin ops@payments.local" in admin.stdout, admin.stderr
        principal = _cli(
            "create-service-principal", "--name", "settler", "--scope", "transactions:settle", data=dev_data
        )
        assert principal.returncode == 0, principal.stderr
        client_id = re.search(r"client_id: (\S+)", principal.stdout).group(1)
        secret = re.search(r"client_secret \(shown once\): (\S+)", principal.stdout).group(1)
        rotated = _cli("rotate-keys", data=dev_data)
        assert rotated.returncode == 0 and "new signing key" in rotated.stdout, rotated.stderr

        # what the commands wrote is what `make run` serves
        with connect(
            f"localhost:{run.auth_port}", f"localhost:{run.tx_port}", ServiceLogin(client_id, secret)
        ) as settler:
            assert settler.get_transaction(payment_id).amount_minor == 1250
        seconds = run.ctrl_c()
    finally:
        if run.proc.poll() is None:
            run.kill()
    _assert_stopped_cleanly(run, seconds)
    assert (dev_data / "PG_VERSION").exists()
    # with `make run` stopped, a command starts the dev database for itself and stops it again
    assert _cli("rotate-keys", data=dev_data).returncode == 0
