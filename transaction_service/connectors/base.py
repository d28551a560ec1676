"""The connector interface: what the transaction service asks of any payment processor.

Shaped after juspay's connector-service (`PaymentService{Authorize, Capture, Void, Refund, Get,
Transform}` and `RefundService{Get, Transform}`): `submit_payment` is Authorize with automatic
capture (the product has no separate capture step, so Capture and Void have no caller yet),
`submit_refund` is Refund, `get_payment`/`get_refund` are the Get calls, and `parse_webhook` is
Transform. A processor is one module implementing `Connector`; it speaks HTTP, never SQL or gRPC,
and turns every answer into the same typed results, so the flow never branches on a processor.

Our reference for a transaction is `tx_<uuid>` and the idempotency key is that reference plus the
attempt kind (`tx_<uuid>:payment`), so a resubmission after a crash or a timeout, by any replica,
carries the same key and can never charge twice.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

REFERENCE_PREFIX = "tx_"


class Outcome(StrEnum):
    """What a processor said about a payment or refund."""

    APPROVED = "APPROVED"  # money moved
    DECLINED = "DECLINED"  # refused for good: nothing moved, `failure_code` says why
    PROCESSING = "PROCESSING"  # accepted; the result comes later (webhook or look-up)
    UNKNOWN = "UNKNOWN"  # no usable answer (timeout, 5xx, unreachable): it may or may not have moved
    NOT_FOUND = "NOT_FOUND"  # a look-up: the processor never received it


class AttemptKind(StrEnum):
    """What an attempt asks for; part of the idempotency key, so attempts of kinds never collide."""

    PAYMENT = "payment"
    REFUND = "refund"


def reference_for(transaction_id: UUID) -> str:
    """Our reference for a transaction, sent to the processor and used to look it up."""
    return f"{REFERENCE_PREFIX}{transaction_id}"


def transaction_id_of(reference: str | None) -> UUID | None:
    """The transaction id inside one of our references; None for anything else."""
    if not reference or not reference.startswith(REFERENCE_PREFIX):
        return None
    try:
        return UUID(reference.removeprefix(REFERENCE_PREFIX))
    except ValueError:
        return None


def idempotency_key_for(transaction_id: UUID, kind: AttemptKind) -> str:
    """The processor idempotency key of an attempt: the same for every retry of it, everywhere."""
    return f"{reference_for(transaction_id)}:{kind.value}"


@dataclass(frozen=True)
class PaymentRequest:
    """A payment to submit: our transaction and the processor's payment method token."""

    transaction_id: UUID
    amount_minor: int
    currency: str
    payment_method: str = field(repr=False)  # a processor token, but never in a log
    description: str = ""

    @property
    def reference(self) -> str:
        """Our reference for this payment."""
        return reference_for(self.transaction_id)


@dataclass(frozen=True)
class RefundRequest:
    """A refund to submit, of a payment the processor charged.

    `processor_payment_id` is the processor's id of the payment when we have it; without it the
    connector finds the payment by our reference first.
    """

    transaction_id: UUID
    payment_transaction_id: UUID
    amount_minor: int
    currency: str
    processor_payment_id: str | None = None

    @property
    def reference(self) -> str:
        """Our reference for this refund."""
        return reference_for(self.transaction_id)


@dataclass(frozen=True)
class ProcessorResult:
    """The processor's answer, typed; `raw` is its body, kept as an event by the flow."""

    outcome: Outcome
    reference: str
    processor_id: str | None = None
    failure_code: str | None = None
    detail: str = ""  # why, in words, for logs and events (never a secret)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class ObjectKind(StrEnum):
    """What a webhook event is about."""

    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: the processor's event id (apply each at most once) and what it says."""

    event_id: str
    event_type: str
    kind: ObjectKind
    reference: str
    transaction_id: UUID | None
    processor_id: str
    outcome: Outcome
    failure_code: str | None
    occurred_at: datetime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class WebhookProblem(StrEnum):
    """Why a webhook was refused; none of them may change anything."""

    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"  # outside the replay window
    MALFORMED = "MALFORMED"  # signed, but not an event we understand


class WebhookRejected(Exception):
    """A webhook that must be answered with an error and otherwise ignored."""

    def __init__(self, problem: WebhookProblem, message: str) -> None:
        super().__init__(f"{problem.value}: {message}")
        self.problem = problem


class ProcessorError(Exception):
    """The processor refused our request as ours to fix (bad credentials, a key reused with another
    body): not a payment outcome, so the flow must not mark the payment from it.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


class Connector(abc.ABC):
    """One payment processor. Implementations hold their secrets privately and never log them."""

    name: str

    @abc.abstractmethod
    async def submit_payment(self, request: PaymentRequest) -> ProcessorResult:
        """Charge a payment (authorize and capture), idempotent per transaction."""

    @abc.abstractmethod
    async def submit_refund(self, request: RefundRequest) -> ProcessorResult:
        """Refund (part of) a charged payment, idempotent per refund transaction."""

    @abc.abstractmethod
    async def get_payment(self, transaction_id: UUID) -> ProcessorResult:
        """What the processor knows of a payment, by our reference (NOT_FOUND: never received)."""

    @abc.abstractmethod
    async def get_refund(self, transaction_id: UUID) -> ProcessorResult:
        """What the processor knows of a refund, by our reference (NOT_FOUND: never received)."""

    @abc.abstractmethod
    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, *, now: float | None = None
    ) -> WebhookEvent:
        """Verify a webhook's signature and timestamp, then parse it; raises WebhookRejected."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
