"""The flow's decisions on fakes (fast tier): what each answer, look-up and webhook leads to.

The real statements, worker and sandbox are exercised in tests/processing; here only the choices:
submit or look up, resubmit or give up, apply or only keep, and when a job is due again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from transaction_service.connectors import Outcome, ProcessorError, ProcessorResult
from transaction_service.domain import Status, TxType
from transaction_service.processing.flow import Flow
from transaction_service.processing.store import Applied, Job

NOW = datetime(2026, 12, 2, tzinfo=UTC)


class FakeStore:
    processor = "sandbox"

    def __init__(self, status: Status = Status.PROCESSING):
        self.status = status
        self.applied: list[dict[str, Any]] = []
        self.rescheduled: list[float] = []
        self.started = 0

    def start(self, _tx_id: UUID, _actor: str) -> bool:
        self.started += 1
        ok = self.status is Status.PENDING
        self.status = Status.PROCESSING if ok else self.status
        return ok

    def apply(self, _tx_id: UUID | None, result: ProcessorResult, **kw: Any) -> Applied:
        self.applied.append({"outcome": result.outcome, **kw})
        moved = kw["target"] if self.status is Status.PROCESSING else None
        self.status = moved or self.status
        return Applied(True, moved, self.status)

    def reschedule(self, _tx_id: UUID, delay: float) -> None:
        self.rescheduled.append(delay)

    def drop(self, _tx_id: UUID) -> None:
        self.applied.append({"dropped": True})


class FakeConnector:
    def __init__(self, *answers: Outcome, lookup: Outcome = Outcome.NOT_FOUND, refuse: bool = False):
        self.answers, self.lookup, self.refuse = list(answers), lookup, refuse
        self.submitted = 0

    async def submit_payment(self, request: Any) -> ProcessorResult:
        if self.refuse:
            raise ProcessorError("api_key_invalid", "bad key", status=401)
        self.submitted += 1
        return ProcessorResult(self.answers.pop(0), request.reference, failure_code="card_declined")

    async def get_payment(self, tx_id: UUID) -> ProcessorResult:
        return ProcessorResult(self.lookup, f"tx_{tx_id}")

    def parse_webhook(self, _headers: Mapping[str, str], _body: bytes) -> Any:
        from transaction_service.connectors import ObjectKind, WebhookEvent

        return WebhookEvent(
            "evt_1",
            "charge.failed",
            ObjectKind.PAYMENT,
            "tx_x",
            uuid4(),
            "ch_1",
            Outcome.DECLINED,
            "card_declined",
            NOW,
        )


async def _inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _flow(store: FakeStore, connector: FakeConnector) -> Flow:
    return Flow(store, connector, _inline, reconcile_after_seconds=30, give_up_seconds=3600)  # type: ignore[arg-type]


def _job(status: Status, submitted_ago: float | None) -> Job:
    submitted = NOW - timedelta(seconds=submitted_ago) if submitted_ago is not None else None
    return Job(uuid4(), TxType.PAYMENT, status, 100, "EUR", "", "pm_card_visa", None, None, 1, submitted, NOW)


@pytest.mark.parametrize(
    ("answer", "final"), [(Outcome.APPROVED, Status.COMPLETED), (Outcome.DECLINED, Status.FAILED)]
)
def test_a_new_job_is_started_then_settled_by_the_answer(answer: Outcome, final: Status) -> None:
    store, connector = FakeStore(Status.PENDING), FakeConnector(answer)
    asyncio.run(_flow(store, connector).run(_job(Status.PENDING, None)))
    assert (store.started, connector.submitted, store.status) == (1, 1, final)
    assert store.rescheduled == []


def test_an_unknown_answer_waits_for_the_reconciler() -> None:
    store = FakeStore(Status.PENDING)
    asyncio.run(_flow(store, FakeConnector(Outcome.UNKNOWN)).run(_job(Status.PENDING, None)))
    assert store.status is Status.PROCESSING and store.rescheduled == [30]


def test_a_cancelled_job_is_never_submitted() -> None:
    store, connector = FakeStore(Status.CANCELLED), FakeConnector(Outcome.APPROVED)
    asyncio.run(_flow(store, connector).run(_job(Status.PENDING, None)))
    assert connector.submitted == 0 and store.applied == []


def test_never_received_is_resubmitted_before_the_give_up_time_and_failed_after_it() -> None:
    store, connector = FakeStore(), FakeConnector(Outcome.APPROVED)
    asyncio.run(_flow(store, connector).run(_job(Status.PROCESSING, 60)))
    assert connector.submitted == 1 and store.status is Status.COMPLETED
    store, connector = FakeStore(), FakeConnector(Outcome.APPROVED)
    asyncio.run(_flow(store, connector).run(_job(Status.PROCESSING, 7200)))
    assert connector.submitted == 0 and store.status is Status.FAILED
    assert store.applied[-1]["failure_code"] == "processor_timeout"


def test_a_processor_still_processing_is_asked_again_later_whatever_the_age() -> None:
    store, connector = FakeStore(), FakeConnector(lookup=Outcome.PROCESSING)
    asyncio.run(_flow(store, connector).run(_job(Status.PROCESSING, 7200)))
    assert store.status is Status.PROCESSING and store.rescheduled == [30] and connector.submitted == 0


def test_a_misconfigured_processor_changes_nothing_and_is_retried_later() -> None:
    store = FakeStore(Status.PENDING)
    asyncio.run(_flow(store, FakeConnector(refuse=True)).run(_job(Status.PENDING, None)))
    assert store.status is Status.PROCESSING and store.applied == [] and store.rescheduled == [30]


def test_a_webhook_is_kept_not_applied_and_makes_the_look_up_due_now() -> None:
    store, woken = FakeStore(), []
    flow = _flow(store, FakeConnector())
    flow.on_due = lambda: woken.append(True)
    asyncio.run(flow.webhook({}, b"{}"))
    assert store.applied[0]["target"] is None and store.status is Status.PROCESSING
    assert store.rescheduled == [0.0] and woken == [True]
