"""The `worker` fixture: a plugin of the root conftest, for the flow, README and dashboard tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import SecretWatch


@pytest.fixture(scope="session")
def worker(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, secret_watch: SecretWatch
) -> Iterator[Any]:
    """The processing worker (`python -m transaction_service.processing`) and a sandbox posting its
    webhooks to it, both real processes, serving the processor "sandbox" of the shared database.

    One for the session: two workers of one processor would share its queue. A test that kills
    either restarts it before it ends (tests/processing/test_resilience.py).
    """
    from tests.processing.harness import new_worker
    from tests.processor.harness import FAST_ENV

    running = new_worker(database_url, tmp_path_factory.mktemp("flow"), dict(FAST_ENV))
    secret_watch.secrets.update({running.sandbox.api_key, running.sandbox.webhook_secret})
    running.sandbox.start()
    running.start()
    yield running
    assert running.stop() == 0, running.log_text()[-3000:]
    running.sandbox.stop()
    assert not secret_watch.leaks(running.log_text()), "a secret is in the worker's log"
