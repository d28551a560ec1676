"""The sandbox processor's connector: its HTTP+JSON API (`python -m sandbox_processor`) over httpx.

How answers map (the same table a Stripe module would need):

| answer | result |
|---|---|
| 200, object `succeeded` / `failed` / `processing` | APPROVED / DECLINED (+ failure_code) / PROCESSING |
| 404 `resource_missing` on a look-up | NOT_FOUND (the processor never received it) |
| other 400/402/404 with an error body, on a submission | DECLINED with the error code: refused for good |
| 409 (key in use, reference in use), 429, 5xx, timeout, connection error | UNKNOWN: ask again later |
| 401/403, 422 `idempotency_key_reused`, 4xx on a look-up | raises ProcessorError: ours to fix |
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from pydantic import SecretStr

from transaction_service.connectors import signatures
from transaction_service.connectors.base import (
    AttemptKind,
    Connector,
    ObjectKind,
    Outcome,
    PaymentRequest,
    ProcessorError,
    ProcessorResult,
    RefundRequest,
    WebhookEvent,
    WebhookProblem,
    WebhookRejected,
    idempotency_key_for,
    reference_for,
    transaction_id_of,
)
from transaction_service.connectors.tls import tls_context

SIGNATURE_HEADER = "sandbox-signature"
STATUSES = {"succeeded": Outcome.APPROVED, "failed": Outcome.DECLINED, "processing": Outcome.PROCESSING}
KINDS = {"charge": ObjectKind.PAYMENT, "refund": ObjectKind.REFUND}
log = logging.getLogger("transaction_service.connectors.sandbox")


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox is and the two secrets shared with it (hidden from repr)."""

    base_url: str
    api_key: SecretStr
    webhook_secret: SecretStr
    # above the sandbox's 2 s `pm_card_slow`; a submitter wanting a shorter bound sets it lower
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 2.0
    replay_window_seconds: float = signatures.DEFAULT_REPLAY_WINDOW_SECONDS


def _object_result(data: Mapping[str, Any], reference: str) -> ProcessorResult:
    status = str(data.get("status"))
    outcome = STATUSES.get(status, Outcome.UNKNOWN)
    failure = data.get("failure_code") if outcome is Outcome.DECLINED else None
    return ProcessorResult(
        outcome,
        str(data.get("reference") or reference),
        processor_id=str(data["id"]) if data.get("id") else None,
        failure_code=str(failure) if failure else None,
        detail=f"status {status}",
        raw=data,
    )


@dataclass(frozen=True)
class _Refusal:
    """An answer other than 200: its status, the processor's error code and message, and body."""

    status: int
    code: str
    message: str
    data: dict[str, Any]

    def error(self) -> ProcessorError:
        """As an error that is ours to fix."""
        return ProcessorError(self.code, self.message, status=self.status)

    def unknown(self, reference: str) -> ProcessorResult:
        """As "no usable answer": the flow asks again later."""
        log.warning("no usable answer for %s: HTTP %d %s", reference, self.status, self.code)
        return ProcessorResult(
            Outcome.UNKNOWN, reference, detail=f"HTTP {self.status} {self.code}", raw=self.data
        )


class SandboxConnector(Connector):
    """`Connector` over the sandbox's API; one pooled HTTP client per instance."""

    name = "sandbox"

    def __init__(self, config: SandboxConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
            follow_redirects=False,
            verify=tls_context(),
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def submit_payment(self, request: PaymentRequest) -> ProcessorResult:
        """POST /v1/charges under `tx_<id>:payment`."""
        body: dict[str, Any] = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "payment_method": request.payment_method,
            "reference": request.reference,
        }
        if request.description:
            body["description"] = request.description
        key = idempotency_key_for(request.transaction_id, AttemptKind.PAYMENT)
        return await self._create("/v1/charges", key, body, request.reference)

    async def submit_refund(self, request: RefundRequest) -> ProcessorResult:
        """POST /v1/refunds under `tx_<refund id>:refund`, finding the charge by reference if needed."""
        charge_id = request.processor_payment_id
        if charge_id is None:
            payment = await self.get_payment(request.payment_transaction_id)
            if payment.outcome is Outcome.NOT_FOUND:
                detail = "the processor never received the payment"
                return ProcessorResult(
                    Outcome.DECLINED, request.reference, failure_code="payment_not_found", detail=detail
                )
            if payment.processor_id is None:
                return ProcessorResult(
                    Outcome.UNKNOWN, request.reference, detail=f"payment look-up: {payment.detail}"
                )
            charge_id = payment.processor_id
        body = {
            "charge": charge_id,
            "amount": request.amount_minor,
            "currency": request.currency,
            "reference": request.reference,
        }
        key = idempotency_key_for(request.transaction_id, AttemptKind.REFUND)
        return await self._create("/v1/refunds", key, body, request.reference)

    async def get_payment(self, transaction_id: UUID) -> ProcessorResult:
        """GET /v1/charges?reference=tx_<id>."""
        return await self._lookup("/v1/charges", reference_for(transaction_id))

    async def get_refund(self, transaction_id: UUID) -> ProcessorResult:
        """GET /v1/refunds?reference=tx_<id>."""
        return await self._lookup("/v1/refunds", reference_for(transaction_id))

    async def _create(self, path: str, key: str, body: dict[str, Any], reference: str) -> ProcessorResult:
        answer = await self._send("POST", path, reference, json=body, headers={"Idempotency-Key": key})
        if isinstance(answer, ProcessorResult):
            return answer
        if answer.status in (401, 403) or answer.code == "idempotency_key_reused":
            raise answer.error()
        if answer.status in (400, 402, 404) and "error" in answer.data:
            # the processor's own refusal; a bare 404 (a wrong base URL, a proxy) proves nothing
            return ProcessorResult(
                Outcome.DECLINED, reference, failure_code=answer.code, detail=answer.message, raw=answer.data
            )
        return answer.unknown(reference)

    async def _lookup(self, path: str, reference: str) -> ProcessorResult:
        answer = await self._send("GET", path, reference, params={"reference": reference})
        if isinstance(answer, ProcessorResult):
            return answer
        if answer.status == 404 and answer.code == "resource_missing":
            return ProcessorResult(Outcome.NOT_FOUND, reference, detail="never received", raw=answer.data)
        if 400 <= answer.status < 500 and answer.status != 429:
            raise answer.error()
        return answer.unknown(reference)

    async def _send(
        self, method: str, path: str, reference: str, **kwargs: Any
    ) -> ProcessorResult | _Refusal:
        """A 200's object as a result, a transport failure as UNKNOWN, any other answer to be mapped."""
        try:
            reply = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            return self._unknown(reference, err)
        try:
            data = reply.json()
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        if reply.status_code == 200:
            return _object_result(data, reference)
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or f"http_{reply.status_code}")
        return _Refusal(reply.status_code, code, str(error.get("message") or reply.reason_phrase), data)

    def _unknown(self, reference: str, err: httpx.HTTPError) -> ProcessorResult:
        if isinstance(err, httpx.TimeoutException):
            detail = f"no answer within {self._config.timeout_seconds:g} s"
        else:
            detail = f"unreachable ({type(err).__name__})"
        log.warning("no usable answer for %s: %s", reference, detail)
        return ProcessorResult(Outcome.UNKNOWN, reference, detail=detail)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, *, now: float | None = None
    ) -> WebhookEvent:
        """Check `Sandbox-Signature` and its timestamp, then read the event; raises WebhookRejected."""
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        secret = self._config.webhook_secret.get_secret_value()
        signatures.verify(header, body, secret, window_seconds=self._config.replay_window_seconds, now=now)
        try:
            event = json.loads(body)
            data = event["data"]["object"]
            kind = KINDS[data["object"]]
            reference, occurred_at = (
                str(data["reference"]),
                datetime.fromtimestamp(int(event["created"]), UTC),
            )
            event_id, event_type, processor_id = str(event["id"]), str(event["type"]), str(data["id"])
        except (ValueError, TypeError, KeyError, OverflowError, OSError) as err:
            raise WebhookRejected(
                WebhookProblem.MALFORMED, f"not a sandbox event ({type(err).__name__})"
            ) from None
        result = _object_result(data, reference)
        return WebhookEvent(
            event_id=event_id,
            event_type=event_type,
            kind=kind,
            reference=reference,
            transaction_id=transaction_id_of(reference),
            processor_id=processor_id,
            outcome=result.outcome,
            failure_code=result.failure_code,
            occurred_at=occurred_at,
            raw=event,
        )
