"""Each test payment method end to end: gRPC create -> worker -> the real sandbox -> final status.

Also seen through WatchTransactions, as every internal service sees it: PENDING, PROCESSING,
then exactly one final status, never a second one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, wait_until
from tests.processing.harness import (
    WorkerProcess,
    charges,
    create_payment,
    reference,
    sandbox_deliveries,
    settled,
    state,
)
from tests.stream.watching import Watcher

COMPLETED, FAILED = pb.TRANSACTION_STATUS_COMPLETED, pb.TRANSACTION_STATUS_FAILED
OUTCOMES = {
    # method: (final status, failure_code, what said it: the answer, a look-up or a webhook)
    "pm_card_visa": (COMPLETED, "", "answer"),
    "pm_card_declined": (FAILED, "card_declined", "answer"),
    "pm_card_insufficient_funds": (FAILED, "insufficient_funds", "answer"),
    "pm_card_slow": (COMPLETED, "", "answer"),
    "pm_card_timeout": (COMPLETED, "", "lookup"),
    "pm_card_async": (COMPLETED, "", "webhook"),
    "pm_card_webhook_twice": (COMPLETED, "", "webhook"),
    "pm_card_out_of_order": (COMPLETED, "", "webhook"),
}


@pytest.mark.parametrize("method", sorted(OUTCOMES))
def test_each_test_payment_method_ends_as_the_processor_decided(
    method: str,
    worker: WorkerProcess,
    tx_stub: Any,
    new_user: Callable[..., Caller],
    db_engine: Engine,
) -> None:
    status, failure_code, source = OUTCOMES[method]
    user = new_user()
    watch = Watcher(tx_stub, user.md).live()
    try:
        created = create_payment(tx_stub, user, method)
        assert created.status == pb.TRANSACTION_STATUS_PENDING and created.processed
        final = settled(tx_stub, user, created.id)
        streamed = [change.new_status for change in watch.wait_for(3)]
    finally:
        watch.stop()
    assert final.status == status, pb.TransactionStatus.Name(final.status)
    assert final.failure_code == failure_code
    # the stream: created, submitted, one final status
    assert streamed == [pb.TRANSACTION_STATUS_PENDING, pb.TRANSACTION_STATUS_PROCESSING, status]
    held = state(db_engine, created.id)
    assert held["jobs"] == 0  # a final transaction leaves the queue
    assert held["statuses"] == [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", held["status"])]
    assert source in {event_source for event_source, _outcome, _id in held["events"]}
    assert charges(worker.sandbox, reference(created.id)) == 1  # charged once, whatever was resent
    if status == COMPLETED:
        assert held["processor_id"], "the processor's id of the charge is kept (refunds need it)"


def test_a_webhook_sent_twice_is_applied_once(
    worker: WorkerProcess, tx_stub: Any, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    user = new_user()
    created = create_payment(tx_stub, user, "pm_card_webhook_twice")
    settled(tx_stub, user, created.id)
    sent = lambda: sandbox_deliveries(worker.sandbox, reference(created.id))  # noqa: E731
    assert wait_until(lambda: len(sent()) == 2 and all(s == "delivered" for _e, s, _b in sent()), 10), sent()
    assert len({event_id for event_id, _s, _b in sent()}) == 1  # the same event, twice
    webhooks = [e for e in state(db_engine, created.id)["events"] if e[0] == "webhook"]
    assert len(webhooks) == 1, webhooks  # kept once: the repeat was answered and ignored
