"""Every test payment method, through the connector, against the sandbox running as a process."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.processor.harness import Receiver, Sandbox, get
from transaction_service.connectors import (
    AttemptKind,
    Outcome,
    PaymentRequest,
    ProcessorResult,
    idempotency_key_for,
    reference_for,
)
from transaction_service.connectors.sandbox import SandboxConnector
from transaction_service.connectors.tls import tls_context


def payment(method: str, amount: int = 1250) -> PaymentRequest:
    """A payment of a fresh transaction."""
    return PaymentRequest(uuid.uuid4(), amount, "EUR", method, description="coffee")


def submit(sandbox: Sandbox, request: PaymentRequest, timeout: float = 10.0) -> ProcessorResult:
    """Submit one payment with a fresh connector."""

    async def scenario(connector: SandboxConnector) -> ProcessorResult:
        return await connector.submit_payment(request)

    return sandbox.run(scenario, timeout=timeout)


def look_up(sandbox: Sandbox, transaction_id: uuid.UUID) -> ProcessorResult:
    """What the sandbox knows of a payment, by our reference."""

    async def scenario(connector: SandboxConnector) -> ProcessorResult:
        return await connector.get_payment(transaction_id)

    return sandbox.run(scenario)


def test_visa_is_approved_and_found_by_our_reference(sandbox: Sandbox) -> None:
    request = payment("pm_card_visa")
    result = submit(sandbox, request)
    assert result.outcome is Outcome.APPROVED
    assert result.reference == reference_for(request.transaction_id)
    assert result.processor_id and result.processor_id.startswith("ch_")
    assert result.failure_code is None and result.raw["amount"] == 1250
    found = look_up(sandbox, request.transaction_id)
    assert (found.outcome, found.processor_id) == (Outcome.APPROVED, result.processor_id)


def test_declined_card_is_declined_with_card_declined(sandbox: Sandbox) -> None:
    request = payment("pm_card_declined")
    result = submit(sandbox, request)
    assert (result.outcome, result.failure_code) == (Outcome.DECLINED, "card_declined")
    assert look_up(sandbox, request.transaction_id).failure_code == "card_declined"


def test_insufficient_funds_is_declined_with_insufficient_funds(sandbox: Sandbox) -> None:
    result = submit(sandbox, payment("pm_card_insufficient_funds"))
    assert (result.outcome, result.failure_code) == (Outcome.DECLINED, "insufficient_funds")


def test_slow_card_is_approved_after_two_seconds_and_holds_its_key_meanwhile(sandbox: Sandbox) -> None:
    request = payment("pm_card_slow")
    key = idempotency_key_for(request.transaction_id, AttemptKind.PAYMENT)

    async def scenario(connector: SandboxConnector) -> tuple[ProcessorResult, httpx.Response]:
        first = asyncio.create_task(connector.submit_payment(request))
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(
            base_url=sandbox.url, verify=tls_context()
        ) as http:  # a twin while the first runs
            twin = await http.post(
                "/v1/charges",
                json={"amount": 1, "currency": "EUR", "payment_method": "pm_card_visa", "reference": "x"},
                headers={"Authorization": f"Bearer {sandbox.api_key}", "Idempotency-Key": key},
            )
        return await first, twin

    started = time.monotonic()
    result, twin = sandbox.run(scenario)
    assert result.outcome is Outcome.APPROVED
    assert time.monotonic() - started >= 2.0
    assert twin.status_code == 409 and twin.json()["error"]["code"] == "idempotency_key_in_use"


def test_timeout_card_is_charged_but_never_answered(sandbox: Sandbox) -> None:
    request = payment("pm_card_timeout")
    result = submit(sandbox, request, timeout=0.5)
    # the client gave up after its 0.5 s (the sandbox holds for 1 s, then would say 504)
    assert (result.outcome, result.detail) == (Outcome.UNKNOWN, "no answer within 0.5 s")
    found = look_up(sandbox, request.transaction_id)
    assert found.outcome is Outcome.APPROVED  # the charge was committed before the silence
    retried = submit(sandbox, request)  # the same key replays the stored answer: no second charge
    assert (retried.outcome, retried.processor_id) == (Outcome.APPROVED, found.processor_id)


def test_a_held_request_is_released_by_the_sandbox_after_its_bound(sandbox: Sandbox) -> None:
    body = {
        "amount": 100,
        "currency": "EUR",
        "payment_method": "pm_card_timeout",
        "reference": f"tx_{uuid.uuid4()}",
    }
    started = time.monotonic()
    with sandbox.http() as http:
        reply = http.post("/v1/charges", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "gateway_timeout"
    assert 0.95 <= time.monotonic() - started < 5  # SANDBOX_TIMEOUT_HOLD_SECONDS=1.0 in these tests


def test_async_card_answers_processing_then_sends_the_result_by_webhook(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    request = payment("pm_card_async")
    result = submit(sandbox, request)
    assert result.outcome is Outcome.PROCESSING
    assert look_up(sandbox, request.transaction_id).outcome in (Outcome.PROCESSING, Outcome.APPROVED)
    [delivery] = receiver.wait_for(request.reference, 1)
    event = delivery.event
    assert event["type"] == "charge.succeeded" and event["data"]["object"]["id"] == result.processor_id
    assert look_up(sandbox, request.transaction_id).outcome is Outcome.APPROVED


def test_webhook_twice_card_delivers_the_same_event_twice(sandbox: Sandbox, receiver: Receiver) -> None:
    request = payment("pm_card_webhook_twice")
    assert submit(sandbox, request).outcome is Outcome.PROCESSING
    first, second = receiver.wait_for(request.reference, 2)
    assert first.event["id"] == second.event["id"] and first.body == second.body
    assert first.event["type"] == "charge.succeeded"
    time.sleep(0.3)
    assert len(receiver.of(request.reference)) == 2  # twice, not more


def test_out_of_order_card_sends_a_stale_failure_after_the_success(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    request = payment("pm_card_out_of_order")
    assert submit(sandbox, request).outcome is Outcome.PROCESSING
    success, stale = receiver.wait_for(request.reference, 2)
    assert success.event["type"] == "charge.succeeded" and stale.event["type"] == "charge.failed"
    assert success.event["id"] != stale.event["id"]
    assert stale.event["created"] <= success.event["created"]  # it describes an earlier attempt
    assert look_up(sandbox, request.transaction_id).outcome is Outcome.APPROVED  # the truth stays


def test_a_never_seen_reference_is_not_found(sandbox: Sandbox) -> None:
    assert look_up(sandbox, uuid.uuid4()).outcome is Outcome.NOT_FOUND
    with sandbox.http() as http:
        reply = http.get("/v1/refunds", params={"reference": f"tx_{uuid.uuid4()}"})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "resource_missing"


def test_an_unreachable_processor_is_unknown_not_an_error(sandbox: Sandbox) -> None:
    request = payment("pm_card_visa")
    unreachable = Sandbox(sandbox.db_path, None, port=1, api_key=sandbox.api_key)
    result = submit(unreachable, request, timeout=1.0)
    assert result.outcome is Outcome.UNKNOWN and "unreachable" in result.detail
    assert look_up(sandbox, request.transaction_id).outcome is Outcome.NOT_FOUND  # never received


def test_an_unknown_test_method_is_declined_as_invalid(sandbox: Sandbox) -> None:
    result = submit(sandbox, payment("pm_card_unheard_of"))
    assert (result.outcome, result.failure_code) == (Outcome.DECLINED, "parameter_invalid")
    assert isinstance(result.raw.get("error"), dict)


def test_health_needs_no_key_and_the_api_does(sandbox: Sandbox) -> None:
    assert get(f"{sandbox.url}/healthz").json() == {"status": "ok"}
    reply = get(f"{sandbox.url}/v1/charges", params={"reference": "tx_x"})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "api_key_invalid"
