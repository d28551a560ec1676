"""Retries, kill -9 of the worker mid-batch and of the sandbox: nothing lost, stuck or charged twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.helpers import Caller
from tests.processing.harness import WorkerProcess, charges, create_payment, reference, wait_final


@pytest.fixture
def restarted(worker: WorkerProcess) -> Iterator[WorkerProcess]:
    """The shared worker, running again (with its sandbox) whatever the test killed."""
    yield worker
    if worker.sandbox.process is None or worker.sandbox.process.poll() is not None:
        worker.sandbox.start()
    if worker.process is None or worker.process.poll() is not None:
        worker.start()


def _settle_all(db_engine: Engine, sandbox: Any, ids: list[str], seconds: float = 60.0) -> dict[str, str]:
    """Each payment's final status, once all are final; each was charged at most once, and queued no more."""
    finals = {tx_id: wait_final(db_engine, tx_id, seconds) for tx_id in ids}
    for tx_id, final in finals.items():
        assert final["jobs"] == 0, (tx_id, final)
        assert charges(sandbox, reference(tx_id)) <= 1, tx_id
        assert final["status"] != "COMPLETED" or charges(sandbox, reference(tx_id)) == 1, tx_id
    return {tx_id: final["status"] for tx_id, final in finals.items()}


def test_five_retries_of_one_submission_charge_once(
    restarted: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    ids = {
        create_payment(tx_stub, user, "pm_card_slow", key="retried").id for _ in range(5)
    }  # client retries
    assert len(ids) == 1
    (tx_id,) = ids
    for _ in range(2):  # the submitter dies mid-submission, twice, and starts again
        time.sleep(0.7)
        restarted.kill()
        restarted.start()
    assert _settle_all(db_engine, restarted.sandbox, [tx_id]) == {tx_id: "COMPLETED"}
    with db_engine.connect() as conn:
        events = conn.execute(
            text("SELECT count(*) FROM payments.transaction_events WHERE transaction_id = :id"), {"id": tx_id}
        ).scalar_one()
    assert events == 3  # PENDING, PROCESSING, COMPLETED: each once


def test_kill_9_of_the_worker_mid_batch_loses_nothing(
    restarted: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    methods = ["pm_card_slow", "pm_card_visa", "pm_card_async", "pm_card_declined", "pm_card_timeout"] * 6
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda m: create_payment(tx_stub, user, m).id, methods))
    time.sleep(0.5)  # some answered, some in flight, some not claimed yet
    restarted.kill()
    restarted.start()
    finals = _settle_all(db_engine, restarted.sandbox, ids)
    expected = {"pm_card_declined": "FAILED"}
    assert [finals[i] for i in ids] == [expected.get(m, "COMPLETED") for m in methods]


def test_kill_9_of_the_sandbox_loses_nothing(
    restarted: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    methods = ["pm_card_visa", "pm_card_async", "pm_card_slow"] * 5
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda m: create_payment(tx_stub, user, m).id, methods))
    time.sleep(0.3)
    restarted.sandbox.kill()
    time.sleep(1.5)  # submissions and look-ups fail meanwhile
    restarted.sandbox.start()
    finals = _settle_all(db_engine, restarted.sandbox, ids)
    assert set(finals.values()) == {"COMPLETED"}
