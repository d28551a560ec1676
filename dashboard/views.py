"""Protobuf messages turned into what the templates show: words, money and times, never enums."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from dashboard.money import format_minor
from payments.transaction.v1 import transaction_pb2 as pb


def _names(enum: str, prefix: str) -> dict[int, str]:
    """Enum number -> upper-case name without its prefix, read from the contract itself.

    A status added to the contract (PROCESSING, SPEC §7) appears in the filters by itself.
    """
    values = pb.DESCRIPTOR.enum_types_by_name[enum].values
    return {v.number: v.name.removeprefix(prefix) for v in values if v.number}


STATUSES = _names("TransactionStatus", "TRANSACTION_STATUS_")
TYPES = _names("TransactionType", "TRANSACTION_TYPE_")


def status_name(number: int) -> str:
    """COMPLETED for TRANSACTION_STATUS_COMPLETED ("" for UNSPECIFIED)."""
    return STATUSES.get(number, "")


def when(ts: Timestamp) -> datetime | None:
    """A protobuf timestamp as an aware UTC datetime (None when unset)."""
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def shown_time(moment: datetime | None) -> str:
    """A time as people read it here: UTC to the second."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


@dataclass(frozen=True)
class TxView:
    """One transaction as the pages show it."""

    id: str
    user_id: str
    type: str
    status: str
    amount_minor: int
    currency: str
    amount: str
    refunded_minor: int
    refunded: str
    remaining_minor: int
    remaining: str
    description: str
    metadata: tuple[tuple[str, str], ...]
    refund_of: str
    etag: str
    created_at: datetime | None
    updated_at: datetime | None
    failure_code: str = ""  # the processor's reason for a FAILED one
    processed: bool = False  # moved by the payment processor

    @property
    def is_payment(self) -> bool:
        """A payment (as opposed to a refund)."""
        return self.type == "PAYMENT"

    @property
    def can_cancel(self) -> bool:
        """Only a PENDING transaction can be cancelled."""
        return self.status == "PENDING"

    @property
    def can_refund(self) -> bool:
        """A COMPLETED payment with money left to give back."""
        return self.is_payment and self.status == "COMPLETED" and self.remaining_minor > 0

    @property
    def created(self) -> str:
        """Creation time in words."""
        return shown_time(self.created_at)


def transaction(tx: pb.Transaction, locale: str) -> TxView:
    """The view of `tx` with money formatted by its currency's exponent."""
    remaining = tx.amount_minor - tx.refunded_minor if tx.type == pb.TRANSACTION_TYPE_PAYMENT else 0
    return TxView(
        id=tx.id,
        user_id=tx.user_id,
        type=TYPES.get(tx.type, "UNKNOWN"),
        status=STATUSES.get(tx.status, "UNKNOWN"),
        amount_minor=tx.amount_minor,
        currency=tx.currency,
        amount=format_minor(tx.amount_minor, tx.currency, locale),
        refunded_minor=tx.refunded_minor,
        refunded=format_minor(tx.refunded_minor, tx.currency, locale),
        remaining_minor=remaining,
        remaining=format_minor(remaining, tx.currency, locale),
        description=tx.description,
        metadata=tuple(sorted(tx.metadata.items())),
        refund_of=tx.refund_of,
        etag=tx.etag,
        created_at=when(tx.created_at),
        updated_at=when(tx.updated_at),
        failure_code=tx.failure_code,
        processed=tx.processed,
    )


@dataclass(frozen=True)
class EventView:
    """One step of a transaction's timeline."""

    id: str
    old_status: str
    new_status: str
    actor: str
    reason: str
    at: str

    @property
    def title(self) -> str:
        """What happened, in words."""
        if not self.old_status:
            return f"Created as {self.new_status.lower()}"
        return f"{self.old_status.lower().capitalize()} → {self.new_status.lower()}"


def event(ev: pb.TransactionEvent) -> EventView:
    """The view of one audit event."""
    return EventView(
        ev.id,
        status_name(ev.old_status),
        status_name(ev.new_status),
        ev.actor,
        ev.reason,
        shown_time(when(ev.created_at)),
    )


def change_event(change: pb.TransactionChange) -> EventView:
    """A live change shown like an audit event."""
    return EventView(
        change.event_id,
        status_name(change.old_status),
        status_name(change.new_status),
        change.actor,
        change.reason,
        shown_time(when(change.occurred_at)),
    )
