"""Payments and refunds: the status machine and the money rules. Pure: no I/O, no SQL.

A *transaction* here is a payment record; the database one is a unit of work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from payments_common.errors import Aborted, AlreadyExists, FailedPrecondition

NOT_FOUND_MESSAGE = "transaction not found"  # one text for missing and foreign ids alike


class Status(StrEnum):
    """Lifecycle state; PENDING resolves at most once, PROCESSING too (migration 0006 enforces it)."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"  # submitted to the payment processor, its outcome not known yet
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class TxType(StrEnum):
    """Kind of money movement."""

    PAYMENT = "PAYMENT"
    REFUND = "REFUND"


# The status machine, declared once: what each status may become. The compare-and-set of a status
# change (`sql.CHANGE_STATUS`) is given `sources(target)`, so the database enforces this table.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.PROCESSING, Status.COMPLETED, Status.FAILED, Status.CANCELLED}),
    Status.PROCESSING: frozenset({Status.COMPLETED, Status.FAILED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}
FINAL = frozenset(status for status, following in TRANSITIONS.items() if not following)
SETTLEMENTS = frozenset({Status.COMPLETED, Status.FAILED})  # need the settle scope
RELEASING = frozenset({Status.FAILED, Status.CANCELLED})  # a refund in these no longer counts


@dataclass(frozen=True)
class NewTransaction:
    """A validated create request; its fingerprint tells a replay from a reused key."""

    type: TxType
    amount_minor: int
    currency: str
    description: str
    metadata: Mapping[str, str]
    idempotency_key: str
    refund_of: UUID | None = None
    # the processor's token of a payment's payment method: the processor charges it
    payment_method: str | None = field(default=None, repr=False)

    def fingerprint(self) -> bytes:
        """SHA-256 of the canonical request (everything but the key, which scopes it)."""
        fields: list[object] = [
            self.type.value,
            self.amount_minor,
            self.currency,
            self.description,
            sorted(self.metadata.items()),
            str(self.refund_of or ""),
        ]
        if self.payment_method is not None:  # so the fingerprints of earlier requests still match
            fields.append(self.payment_method)
        canonical = json.dumps(
            fields,
            separators=(",", ":"),
            ensure_ascii=True,
        )
        return hashlib.sha256(canonical.encode()).digest()


@dataclass(frozen=True)
class Transaction:
    """A stored payment or refund."""

    id: UUID
    user_id: UUID
    type: TxType
    status: Status
    amount_minor: int
    currency: str
    description: str
    metadata: Mapping[str, str]
    idempotency_key: str
    refund_of: UUID | None
    refunded_minor: int
    version: int
    request_fingerprint: bytes
    created_at: datetime
    updated_at: datetime
    processor: str | None = None  # the processor that moves it; None: settled by hand
    failure_code: str | None = None  # the processor's reason, for a FAILED one

    @property
    def etag(self) -> str:
        """The version as an opaque-looking tag; it changes on every write of the row."""
        return str(self.version)


@dataclass(frozen=True)
class Event:
    """One audit record of a status change (old_status None for the creation)."""

    id: UUID
    transaction_id: UUID
    old_status: Status | None
    new_status: Status
    actor: str
    reason: str
    created_at: datetime


def replay(existing: Transaction, request: NewTransaction) -> Transaction:
    """The original transaction for a true retry; a key reused for another request is refused."""
    if existing.request_fingerprint != request.fingerprint():
        raise AlreadyExists(
            "the idempotency key was already used with a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
        )
    return existing


def sources(target: Status) -> list[str]:
    """The statuses that may become `target` (as the database stores them)."""
    return sorted(status.value for status, following in TRANSITIONS.items() if target in following)


def unchanged(current: Transaction, target: Status, etag: int | None) -> Transaction:
    """The answer when the compare-and-set changed nothing: OK for a repeat, else why not.

    Repeating the current status is OK even with an old etag, so a caller may safely retry an
    update that already succeeded; then a stale etag is ABORTED, anything else an illegal move.
    """
    if current.status == target:
        return current
    if current.processor is not None and target in SETTLEMENTS:
        raise FailedPrecondition(
            "the payment processor settles this transaction; it cannot be settled by hand",
            reason="SETTLED_BY_PROCESSOR",
        )
    if etag is not None and etag != current.version:
        raise Aborted("the transaction changed since it was read (stale etag)", reason="ETAG_MISMATCH")
    raise FailedPrecondition(
        f"a {current.status.value} transaction cannot become {target.value}",
        reason="INVALID_STATUS_TRANSITION",
    )


def check_refund(payment: Transaction, refund: NewTransaction) -> None:
    """A refund returns money from a COMPLETED payment in its currency, never more than remains."""
    if payment.type != TxType.PAYMENT or payment.status != Status.COMPLETED:
        raise FailedPrecondition("only a COMPLETED payment can be refunded", reason="REFUND_TARGET_INVALID")
    if payment.currency != refund.currency:
        raise FailedPrecondition(
            f"a refund must be in the payment's currency ({payment.currency})", reason="REFUND_TARGET_INVALID"
        )
    remaining = payment.amount_minor - payment.refunded_minor
    if refund.amount_minor > remaining:
        raise FailedPrecondition(
            f"the refund exceeds what remains refundable ({remaining} minor units)",
            reason="REFUND_EXCEEDS_REMAINING",
            metadata={"remaining_minor": str(remaining)},
        )
