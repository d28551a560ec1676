"""Idempotency keys at the sandbox: retries replay, other bodies are refused, nothing charges twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.processor.harness import Sandbox
from transaction_service.connectors import (
    AttemptKind,
    Outcome,
    PaymentRequest,
    ProcessorError,
    ProcessorResult,
    idempotency_key_for,
)
from transaction_service.connectors.sandbox import SandboxConnector


def charge_body(reference: str, method: str = "pm_card_visa", amount: int = 500) -> dict[str, Any]:
    """A raw charge request."""
    return {"amount": amount, "currency": "EUR", "payment_method": method, "reference": reference}


def test_the_key_is_derived_from_the_transaction_id_and_the_attempt_kind() -> None:
    tx = uuid.UUID("5f0c4c9e-8f2a-4a59-9d0e-0f6b1f1d2a3b")
    assert idempotency_key_for(tx, AttemptKind.PAYMENT) == f"tx_{tx}:payment"
    assert idempotency_key_for(tx, AttemptKind.REFUND) == f"tx_{tx}:refund"


def test_five_retries_of_one_payment_make_one_charge(sandbox: Sandbox) -> None:
    request = PaymentRequest(uuid.uuid4(), 990, "EUR", "pm_card_visa")

    async def scenario(connector: SandboxConnector) -> list[ProcessorResult]:
        sequential = [await connector.submit_payment(request) for _ in range(3)]
        concurrent = await asyncio.gather(*(connector.submit_payment(request) for _ in range(2)))
        return [*sequential, *concurrent]

    results = sandbox.run(scenario)
    ids = {r.processor_id for r in results if r.outcome is Outcome.APPROVED}
    # a concurrent twin may be told "key in use" (UNKNOWN, retry later); none is a second charge
    assert len(ids) == 1 and all(r.outcome in (Outcome.APPROVED, Outcome.UNKNOWN) for r in results)

    async def lookup(connector: SandboxConnector) -> ProcessorResult:
        return await connector.get_payment(request.transaction_id)

    assert sandbox.run(lookup).processor_id in ids


def test_a_replay_is_the_original_answer_byte_for_byte(sandbox: Sandbox) -> None:
    body, key = charge_body(f"tx_{uuid.uuid4()}"), str(uuid.uuid4())
    with sandbox.http() as http:
        first = http.post("/v1/charges", json=body, headers={"Idempotency-Key": key})
        # the same request in another key order and spacing is the same request
        again = http.post(
            "/v1/charges",
            content=json.dumps(dict(reversed(body.items())), indent=2),
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"


def test_the_same_key_with_another_body_is_refused(sandbox: Sandbox) -> None:
    reference, key = f"tx_{uuid.uuid4()}", str(uuid.uuid4())
    with sandbox.http() as http:
        assert http.post(
            "/v1/charges", json=charge_body(reference), headers={"Idempotency-Key": key}
        ).is_success
        other = http.post(
            "/v1/charges", json=charge_body(reference, amount=501), headers={"Idempotency-Key": key}
        )
        elsewhere = http.post(
            "/v1/refunds",
            json={"charge": "ch_x", "amount": 1, "reference": "r"},
            headers={"Idempotency-Key": key},
        )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert elsewhere.status_code == 422  # a key belongs to one endpoint's one request


def test_a_key_reused_with_another_body_is_an_error_not_an_outcome(sandbox: Sandbox) -> None:
    request = PaymentRequest(uuid.uuid4(), 700, "EUR", "pm_card_visa")
    changed = PaymentRequest(request.transaction_id, 701, "EUR", "pm_card_visa")

    async def scenario(connector: SandboxConnector) -> None:
        assert (await connector.submit_payment(request)).outcome is Outcome.APPROVED
        with pytest.raises(ProcessorError) as caught:
            await connector.submit_payment(changed)
        assert caught.value.code == "idempotency_key_reused" and caught.value.status == 422

    sandbox.run(scenario)


def test_one_reference_is_charged_once_whatever_the_key(sandbox: Sandbox) -> None:
    body = charge_body(f"tx_{uuid.uuid4()}")
    with sandbox.http() as http:
        first = http.post("/v1/charges", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        second = http.post("/v1/charges", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert first.status_code == 200
    assert second.status_code == 409 and second.json()["error"]["code"] == "reference_in_use"


def test_a_request_without_a_key_is_refused(sandbox: Sandbox) -> None:
    with sandbox.http() as http:
        reply = http.post("/v1/charges", json=charge_body(f"tx_{uuid.uuid4()}"))
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "idempotency_key_missing"
