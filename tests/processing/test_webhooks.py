"""The webhook endpoint over real HTTP: only a signed, fresh, new event may change anything.

Each case takes a real event the sandbox sent, then forges, ages or replays it against the
worker, and checks the database afterwards: no status, no version, no event row moved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from sandbox_processor.webhooks import sign
from tests.helpers import Caller, wait_until
from tests.processing.harness import WorkerProcess, create_payment, reference, sandbox_deliveries, settled


def _version(engine: Engine, tx_id: str) -> tuple[str, int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, version, (SELECT count(*) FROM payments.processor_events e"
                " WHERE e.transaction_id = t.id) AS events FROM payments.transactions t WHERE id = :id"
            ),
            {"id": tx_id},
        ).one()
    return str(row.status), int(row.version), int(row.events)


def _post(worker: WorkerProcess, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"} | ({"sandbox-signature": signature} if signature else {})
    return httpx.post(worker.webhook_url, content=body, headers=headers, timeout=5)


@pytest.fixture
def announced(
    worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller]
) -> tuple[str, dict[str, Any]]:
    """A payment completed by webhook (pm_card_async) and the real event the sandbox sent for it."""
    user = new_user()
    created = create_payment(tx_stub, user, "pm_card_async")
    settled(tx_stub, user, created.id)
    sent = lambda: sandbox_deliveries(worker.sandbox, reference(created.id))  # noqa: E731
    assert wait_until(lambda: any(state == "delivered" for _e, state, _b in sent()), 10)
    return created.id, json.loads(sent()[0][2])


def _forged_failure(event: dict[str, Any]) -> bytes:
    """The same object reported failed, under a new event id: what an attacker would want applied."""
    forged = json.loads(json.dumps(event))
    forged["id"] = f"evt_forged_{time.monotonic_ns()}"
    forged["type"] = "charge.failed"
    forged["data"]["object"].update(status="failed", failure_code="card_declined")
    return json.dumps(forged).encode()


def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(
    worker: WorkerProcess, announced: tuple[str, dict[str, Any]], db_engine: Engine
) -> None:
    tx_id, event = announced
    before = _version(db_engine, tx_id)
    body = _forged_failure(event)
    now = int(time.time())
    for signature in (None, sign("whsec_not_the_secret_at_all", body, now), f"t={now},v1=00", "garbage"):
        answer = _post(worker, body, signature)
        assert answer.status_code == 400, (signature, answer.text)
        assert answer.json()["error"]["code"] in {"missing_signature", "bad_signature"}
    assert _version(db_engine, tx_id) == before


def test_a_webhook_outside_the_replay_window_is_refused(
    worker: WorkerProcess, announced: tuple[str, dict[str, Any]], db_engine: Engine
) -> None:
    tx_id, event = announced
    before = _version(db_engine, tx_id)
    body = _forged_failure(event)
    for moment in (int(time.time()) - 3600, int(time.time()) + 3600):  # captured long ago, or from the future
        answer = _post(worker, body, sign(worker.sandbox.webhook_secret, body, moment))
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "stale_timestamp", answer.text
    assert _version(db_engine, tx_id) == before


def test_a_replayed_event_id_is_answered_and_applied_only_once(
    worker: WorkerProcess, announced: tuple[str, dict[str, Any]], db_engine: Engine
) -> None:
    tx_id, event = announced
    before = _version(db_engine, tx_id)
    body = json.dumps(event).encode()  # the real event again, freshly signed: a replay
    for _ in range(3):
        answer = _post(worker, body, sign(worker.sandbox.webhook_secret, body, int(time.time())))
        assert answer.status_code == 200 and answer.json()["result"] == "duplicate", answer.text
    assert _version(db_engine, tx_id) == before


def test_a_signed_late_failure_is_kept_but_never_changes_a_final_status(
    worker: WorkerProcess, announced: tuple[str, dict[str, Any]], db_engine: Engine
) -> None:
    tx_id, event = announced
    status, version, events = _version(db_engine, tx_id)
    body = _forged_failure(event)  # as the processor itself would send a stale one: validly signed
    answer = _post(worker, body, sign(worker.sandbox.webhook_secret, body, int(time.time())))
    assert answer.status_code == 200 and answer.json()["result"] == "recorded", answer.text
    assert _version(db_engine, tx_id) == (status, version, events + 1)  # kept as an event, nothing else


def test_malformed_or_oversized_bodies_are_refused(worker: WorkerProcess) -> None:
    body = b'{"id": "evt_x", "data": {}}'
    answer = _post(worker, body, sign(worker.sandbox.webhook_secret, body, int(time.time())))
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "malformed"
    huge = b"x" * (65 * 1024)
    assert _post(worker, huge, "t=1,v1=00").status_code == 413
    assert (
        httpx.post(worker.webhook_url.replace("sandbox", "stripe"), content=b"{}", timeout=5).status_code
        == 404
    )
