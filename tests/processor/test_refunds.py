"""Refunds through the connector: of charged payments only, within what is left, idempotent."""

from __future__ import annotations

import uuid

from tests.processor.harness import Receiver, Sandbox
from transaction_service.connectors import Outcome, PaymentRequest, ProcessorResult, RefundRequest
from transaction_service.connectors.sandbox import SandboxConnector


def charged(sandbox: Sandbox, method: str = "pm_card_visa", amount: int = 1000) -> ProcessorResult:
    """A payment the sandbox answered for; `reference` is `tx_<payment id>`."""

    async def scenario(connector: SandboxConnector) -> ProcessorResult:
        return await connector.submit_payment(PaymentRequest(uuid.uuid4(), amount, "EUR", method))

    return sandbox.run(scenario)


def payment_id(result: ProcessorResult) -> uuid.UUID:
    """Our transaction id inside a result's reference."""
    return uuid.UUID(result.reference.removeprefix("tx_"))


def refund(sandbox: Sandbox, request: RefundRequest) -> ProcessorResult:
    """Submit one refund with a fresh connector."""

    async def scenario(connector: SandboxConnector) -> ProcessorResult:
        return await connector.submit_refund(request)

    return sandbox.run(scenario)


def test_a_refund_of_a_charged_payment_is_approved_and_found(sandbox: Sandbox) -> None:
    payment = charged(sandbox)
    request = RefundRequest(
        uuid.uuid4(), payment_id(payment), 400, "EUR", processor_payment_id=payment.processor_id
    )
    result = refund(sandbox, request)
    assert (
        result.outcome is Outcome.APPROVED and result.processor_id and result.processor_id.startswith("re_")
    )
    assert result.raw["charge"] == payment.processor_id

    async def lookup(connector: SandboxConnector) -> ProcessorResult:
        return await connector.get_refund(request.transaction_id)

    assert sandbox.run(lookup).processor_id == result.processor_id


def test_the_connector_finds_the_charge_by_our_reference_when_not_told(sandbox: Sandbox) -> None:
    payment = charged(sandbox)
    result = refund(sandbox, RefundRequest(uuid.uuid4(), payment_id(payment), 1000, "EUR"))
    assert result.outcome is Outcome.APPROVED and result.raw["charge"] == payment.processor_id


def test_a_refund_of_a_payment_never_received_is_declined(sandbox: Sandbox) -> None:
    result = refund(sandbox, RefundRequest(uuid.uuid4(), uuid.uuid4(), 100, "EUR"))
    assert (result.outcome, result.failure_code) == (Outcome.DECLINED, "payment_not_found")


def test_refunds_beyond_the_charge_are_declined_and_retries_refund_once(sandbox: Sandbox) -> None:
    payment = charged(sandbox, amount=1000)
    first = RefundRequest(uuid.uuid4(), payment_id(payment), 700, "EUR", payment.processor_id)
    results = [refund(sandbox, first) for _ in range(3)]  # retries of one refund: one refund
    assert {r.processor_id for r in results} == {results[0].processor_id}
    over = refund(sandbox, RefundRequest(uuid.uuid4(), payment_id(payment), 301, "EUR", payment.processor_id))
    assert (over.outcome, over.failure_code) == (Outcome.DECLINED, "amount_too_large")
    rest = refund(sandbox, RefundRequest(uuid.uuid4(), payment_id(payment), 300, "EUR", payment.processor_id))
    assert rest.outcome is Outcome.APPROVED


def test_a_declined_payment_cannot_be_refunded(sandbox: Sandbox) -> None:
    payment = charged(sandbox, "pm_card_declined")
    result = refund(
        sandbox, RefundRequest(uuid.uuid4(), payment_id(payment), 100, "EUR", payment.processor_id)
    )
    assert (result.outcome, result.failure_code) == (Outcome.DECLINED, "charge_not_refundable")


def test_a_refund_of_an_async_payment_is_resolved_by_webhook(sandbox: Sandbox, receiver: Receiver) -> None:
    payment = charged(sandbox, "pm_card_async")
    receiver.wait_for(payment.reference, 1)  # the charge succeeded
    request = RefundRequest(uuid.uuid4(), payment_id(payment), 250, "EUR", payment.processor_id)
    assert refund(sandbox, request).outcome is Outcome.PROCESSING
    [delivery] = receiver.wait_for(f"tx_{request.transaction_id}", 1)
    assert delivery.event["type"] == "refund.succeeded"
