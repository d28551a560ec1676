"""The processor flow's reads and writes: one method per statement of `sql.processor`, blocking.

The worker runs them on its `Offload` pool; each is one autocommitted statement, so a worker
killed between two leaves a state the next claim continues from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from payments_common.db import Database
from transaction_service import sql
from transaction_service.connectors import ProcessorResult
from transaction_service.domain import Status, TxType

SECRET_FIELDS = frozenset({"payment_method"})  # kept out of the stored bodies


@dataclass(frozen=True)
class Job:
    """A claimed job: the transaction to submit or look up, and what its submission needs."""

    id: UUID
    type: TxType
    status: Status
    amount_minor: int
    currency: str
    description: str
    payment_method: str | None
    refund_of: UUID | None
    payment_processor_id: str | None  # a refund: the processor's id of the payment
    attempts: int
    submitted_at: datetime | None  # None: never sent
    claimed_at: datetime

    def __repr__(self) -> str:  # the payment method is a processor token: never in a log
        return f"Job({self.type.value} {self.id} {self.status.value}, attempt {self.attempts})"


@dataclass(frozen=True)
class Applied:
    """What `apply` did: whether the event was new, the final status it set, and the status now."""

    recorded: bool
    changed_to: Status | None
    status: Status | None  # None: not one of our transactions


def _body(raw: Mapping[str, Any]) -> str:
    """A processor's body as JSON, without payment method tokens (at any depth)."""

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items() if k not in SECRET_FIELDS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(raw), default=str)


class ProcessingStore:
    """The statements of the flow on the service's database."""

    def __init__(self, db: Database, processor: str):
        self._db = db
        self.processor = processor

    def claim(self, limit: int, lease_seconds: float) -> list[Job]:
        """Up to `limit` due jobs of this processor, each held for `lease_seconds`."""
        with self._db.statement() as session:
            rows = session.rows(
                sql.CLAIM_JOBS, processor=self.processor, limit=limit, lease_seconds=lease_seconds
            )
        return [
            Job(
                id=row.id,
                type=TxType(row.type),
                status=Status(row.status),
                amount_minor=row.amount_minor,
                currency=row.currency,
                description=row.description,
                payment_method=row.payment_method,
                refund_of=row.refund_of,
                payment_processor_id=row.payment_processor_id,
                attempts=row.attempts,
                submitted_at=row.submitted_at,
                claimed_at=row.claimed_at,
            )
            for row in rows
        ]

    def start(self, tx_id: UUID, actor: str) -> bool:
        """PENDING -> PROCESSING before the first submission; False (job dropped) if not PENDING."""
        with self._db.statement() as session:
            reason = f"submitted to {self.processor}"
            return bool(session.value(sql.START_PROCESSING, id=tx_id, actor=actor, reason=reason))

    def apply(
        self,
        tx_id: UUID | None,
        result: ProcessorResult,
        *,
        source: str,
        target: Status | None,
        actor: str,
        reason: str,
        event_id: str | None = None,
        failure_code: str | None = None,
    ) -> Applied:
        """Keep what the processor said as an event, then move a PROCESSING transaction to `target`."""
        with self._db.statement() as session:
            row = session.one(
                sql.APPLY_RESULT,
                id=tx_id,
                processor=self.processor,
                source=source,
                event_id=event_id,
                outcome=result.outcome.value,
                failure_code=failure_code or result.failure_code,
                detail=result.detail[:500],
                body=_body(result.raw),
                target=target.value if target is not None else None,
                processor_id=result.processor_id,
                actor=actor,
                reason=reason[:500],
            )
        assert row is not None  # the statement always returns its one row
        return Applied(
            bool(row.recorded),
            Status(row.changed_to) if row.changed_to else None,
            Status(row.status) if row.status else None,
        )

    def reschedule(self, tx_id: UUID, delay_seconds: float) -> None:
        """Look the job up again in `delay_seconds`."""
        with self._db.statement() as session:
            session.rows(sql.RESCHEDULE_JOB, id=tx_id, delay_seconds=delay_seconds)

    def drop(self, tx_id: UUID) -> None:
        """Forget a job whose transaction is final."""
        with self._db.statement() as session:
            session.rows(sql.DROP_JOB, id=tx_id)
