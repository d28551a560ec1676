"""Webhooks as a receiver sees them: signed, verified within a replay window, retried on failure."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
import uuid

import pytest

from tests.processor.harness import Delivery, Receiver, Sandbox
from transaction_service.connectors import (
    ObjectKind,
    Outcome,
    PaymentRequest,
    WebhookEvent,
    WebhookProblem,
    WebhookRejected,
)
from transaction_service.connectors.sandbox import SandboxConnector


def async_payment(
    sandbox: Sandbox, receiver: Receiver, method: str = "pm_card_async", count: int = 1
) -> list[Delivery]:
    """Submit an async payment and wait for `count` deliveries of its webhooks."""
    request = PaymentRequest(uuid.uuid4(), 300, "EUR", method)

    async def scenario(connector: SandboxConnector) -> None:
        assert (await connector.submit_payment(request)).outcome is Outcome.PROCESSING

    sandbox.run(scenario)
    return receiver.wait_for(request.reference, count)


def parse(
    sandbox: Sandbox,
    delivery: Delivery,
    *,
    body: bytes | None = None,
    secret: str | None = None,
    now: float | None = None,
) -> WebhookEvent:
    """The connector's verdict on a delivery (optionally with another body, secret or clock)."""

    async def scenario(connector: SandboxConnector) -> WebhookEvent:
        return connector.parse_webhook(delivery.headers, delivery.body if body is None else body, now=now)

    return sandbox.run(scenario, webhook_secret=secret or sandbox.webhook_secret)


def resign(sandbox: Sandbox, body: bytes, timestamp: int) -> dict[str, str]:
    """A correctly signed header for `body` at another time (what a replayer cannot make)."""
    mac = hmac.new(
        sandbox.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return {"Sandbox-Signature": f"t={timestamp},v1={mac}"}


def test_a_delivered_webhook_verifies_and_parses(sandbox: Sandbox, receiver: Receiver) -> None:
    [delivery] = async_payment(sandbox, receiver)
    event = parse(sandbox, delivery)
    assert event.event_id.startswith("evt_") and event.event_id == delivery.event["id"]
    assert (event.kind, event.outcome, event.event_type) == (
        ObjectKind.PAYMENT,
        Outcome.APPROVED,
        "charge.succeeded",
    )
    assert event.reference == delivery.reference and str(event.transaction_id) == delivery.reference[3:]
    assert event.processor_id.startswith("ch_") and event.failure_code is None
    assert abs(event.occurred_at.timestamp() - time.time()) < 10


def test_the_stale_failure_parses_as_a_decline_with_its_own_event_id(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    success, stale = async_payment(sandbox, receiver, "pm_card_out_of_order", 2)
    first, second = parse(sandbox, success), parse(sandbox, stale)
    assert first.outcome is Outcome.APPROVED
    assert (second.outcome, second.failure_code) == (Outcome.DECLINED, "processing_error")
    assert first.event_id != second.event_id and second.occurred_at <= first.occurred_at


def test_a_tampered_body_or_another_secret_is_a_bad_signature(sandbox: Sandbox, receiver: Receiver) -> None:
    [delivery] = async_payment(sandbox, receiver)
    tampered = delivery.body.replace(b'"amount": 300', b'"amount": 30000')
    assert tampered != delivery.body
    with pytest.raises(WebhookRejected) as caught:
        parse(sandbox, delivery, body=tampered)
    assert caught.value.problem is WebhookProblem.BAD_SIGNATURE
    with pytest.raises(WebhookRejected) as caught:
        parse(sandbox, delivery, secret="whsec_someone_elses_secret")
    assert caught.value.problem is WebhookProblem.BAD_SIGNATURE


def test_a_webhook_without_a_signature_is_refused(sandbox: Sandbox, receiver: Receiver) -> None:
    [delivery] = async_payment(sandbox, receiver)
    unsigned = Delivery(delivery.at, {"Content-Type": "application/json"}, delivery.body, 200)
    with pytest.raises(WebhookRejected) as caught:
        parse(sandbox, unsigned)
    assert caught.value.problem is WebhookProblem.MISSING_SIGNATURE


def test_an_old_timestamp_is_outside_the_replay_window(sandbox: Sandbox, receiver: Receiver) -> None:
    [delivery] = async_payment(sandbox, receiver)
    # the genuine delivery, replayed six minutes later
    with pytest.raises(WebhookRejected) as caught:
        parse(sandbox, delivery, now=time.time() + 360)
    assert caught.value.problem is WebhookProblem.STALE_TIMESTAMP
    # a validly signed copy whose timestamp is old; and the window is a setting
    old = Delivery(delivery.at, resign(sandbox, delivery.body, int(time.time()) - 301), delivery.body, 200)
    with pytest.raises(WebhookRejected) as caught:
        parse(sandbox, old)
    assert caught.value.problem is WebhookProblem.STALE_TIMESTAMP

    async def wider(connector: SandboxConnector) -> WebhookEvent:
        return connector.parse_webhook(old.headers, old.body)

    assert sandbox.run(wider, replay_window_seconds=600).event_id == delivery.event["id"]


def test_a_signed_body_that_is_not_an_event_is_malformed(sandbox: Sandbox, receiver: Receiver) -> None:
    [delivery] = async_payment(sandbox, receiver)
    body = b'{"id": "evt_1", "data": {}}'
    forged = Delivery(delivery.at, resign(sandbox, body, int(time.time())), body, 200)
    with pytest.raises(WebhookRejected) as caught:
        parse(sandbox, forged)
    assert caught.value.problem is WebhookProblem.MALFORMED


def test_failed_deliveries_are_retried_with_backoff_then_abandoned(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    retried = PaymentRequest(uuid.uuid4(), 100, "EUR", "pm_card_async")
    abandoned = PaymentRequest(uuid.uuid4(), 100, "EUR", "pm_card_async")
    receiver.fail[retried.reference] = 2  # two 500s, then a 200
    receiver.fail[abandoned.reference] = 99  # never accepted

    async def scenario(connector: SandboxConnector) -> None:
        for request in (retried, abandoned):
            await connector.submit_payment(request)

    sandbox.run(scenario)
    attempts = receiver.wait_for(retried.reference, 3)
    assert [d.answered for d in attempts] == [500, 500, 200]
    assert len({d.event["id"] for d in attempts}) == 1  # one event, three attempts
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # SANDBOX_WEBHOOK_BACKOFF_SECONDS=0.1, doubling
    receiver.wait_for(abandoned.reference, 3)
    time.sleep(0.6)  # a 4th attempt would come 0.4 s after the 3rd
    assert len(receiver.of(abandoned.reference)) == 3  # SANDBOX_WEBHOOK_MAX_ATTEMPTS=3, then no more
