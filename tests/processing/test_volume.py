"""The issue's volumes: timeouts resolved by the reconciler, duplicated and out-of-order webhooks."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.helpers import Caller, wait_until
from tests.processing.harness import WorkerProcess, charges, create_payment, reference, wait_final

pytestmark = pytest.mark.usefixtures("worker")


def _create(tx_stub: Any, user: Caller, methods: list[str]) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda m: create_payment(tx_stub, user, m).id, methods))


def _rows(db_engine: Engine, query: str, ids: list[str]) -> list[Any]:
    with db_engine.connect() as conn:
        return list(conn.execute(text(query), {"ids": ids}).all())


def test_fifty_timeouts_are_all_resolved_by_the_reconciler_and_none_charged_twice(
    worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    ids = _create(tx_stub, new_user(), ["pm_card_timeout"] * 50)
    finals = [wait_final(db_engine, tx_id, 60) for tx_id in ids]
    assert [f["status"] for f in finals] == ["COMPLETED"] * 50
    assert all(any(e[0] == "lookup" and e[1] == "APPROVED" for e in f["events"]) for f in finals)
    assert [charges(worker.sandbox, reference(tx_id)) for tx_id in ids] == [1] * 50


@pytest.mark.parametrize("method", ["pm_card_out_of_order", "pm_card_webhook_twice"])
def test_a_hundred_replayed_or_stale_webhooks_never_downgrade_and_apply_once(
    method: str, worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    ids = _create(tx_stub, new_user(), [method] * 100)
    finals = [wait_final(db_engine, tx_id, 60) for tx_id in ids]
    assert [f["status"] for f in finals] == ["COMPLETED"] * 100
    # every status event once: created, submitted, completed; nothing after the final one
    changes = _rows(
        db_engine,
        "SELECT transaction_id, count(*) AS n, count(*) FILTER (WHERE old_status IN"
        " ('COMPLETED', 'FAILED', 'CANCELLED')) AS downgrades FROM payments.transaction_events"
        " WHERE transaction_id = ANY (CAST(:ids AS uuid[])) GROUP BY transaction_id",
        ids,
    )
    assert sorted((r.n, r.downgrades) for r in changes) == [(3, 0)] * 100
    assert [charges(worker.sandbox, reference(tx_id)) for tx_id in ids] == [1] * 100
    # each delivered event kept once: the stale failure is a second event, the repeat is not
    per_tx = 2 if method == "pm_card_out_of_order" else 1

    def webhooks() -> list[int]:
        return sorted(
            r.n
            for r in _rows(
                db_engine,
                "SELECT count(*) AS n FROM payments.processor_events WHERE source = 'webhook'"
                " AND transaction_id = ANY (CAST(:ids AS uuid[])) GROUP BY transaction_id",
                ids,
            )
        )

    assert wait_until(lambda: webhooks() == [per_tx] * 100, 20), webhooks()
