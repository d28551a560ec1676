"""Fixtures of the processor tests: one shared sandbox process and receiver; no PostgreSQL needed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SecretWatch
from tests.processor.harness import FAST_ENV, Receiver, Sandbox


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """The webhook endpoint the shared sandbox posts to."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def sandbox_secrets() -> Iterator[SecretWatch]:
    """Every log line of these tests; fails the session if a sandbox key or secret was logged."""
    watch = SecretWatch()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    yield watch
    root.removeHandler(watch)
    root.setLevel(previous)
    assert not watch.leaks(), f"secrets found in logs: {watch.leaks()}"


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, sandbox_secrets: SecretWatch
) -> Iterator[Sandbox]:
    """The shared sandbox process, with shortened delays (FAST_ENV), posting to `receiver`."""
    running = Sandbox(tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3", receiver.url, dict(FAST_ENV))
    sandbox_secrets.secrets.update({running.api_key, running.webhook_secret})
    running.start()
    yield running
    assert running.stop() == 0
    assert not sandbox_secrets.leaks(running.log_text()), "a secret is in the sandbox's log"


@pytest.fixture
def own_sandbox(
    tmp_path: Path, receiver: Receiver, sandbox_secrets: SecretWatch
) -> Iterator[Callable[..., Sandbox]]:
    """Factory: a sandbox of the test's own (to kill and restart), stopped afterwards."""
    started: list[Sandbox] = []

    def _start(**env: Any) -> Sandbox:
        running = Sandbox(tmp_path / "own.sqlite3", receiver.url, {**FAST_ENV, **env})
        sandbox_secrets.secrets.update({running.api_key, running.webhook_secret})
        running.start()
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()
        assert not sandbox_secrets.leaks(running.log_text()), "a secret is in the sandbox's log"
