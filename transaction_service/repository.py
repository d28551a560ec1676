"""Reads and writes of payments.* inside one unit of work; rows come back as domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    func,
    literal,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.types import LargeBinary, Text, Uuid

from transaction_service.domain import Event, NewTransaction, Status, Transaction, TxType
from transaction_service.models import events, transactions, users
from transaction_service.pagination import Cursor, ListFilter

_T = transactions.c
_EVENT_COLUMNS = ["transaction_id", "old_status", "new_status", "actor", "reason"]
# rows are unpacked by position (a hot path: a page builds 50 of them); the order is checked here
_ROW_ORDER = [
    "id",
    "user_id",
    "type",
    "status",
    "amount_minor",
    "currency",
    "description",
    "metadata",
    "idempotency_key",
    "request_fingerprint",
    "refund_of",
    "refunded_minor",
    "version",
    "created_at",
    "updated_at",
]
assert [c.name for c in transactions.c] == _ROW_ORDER, "update _transaction with the columns"
_TYPES = {t.value: t for t in TxType}
_STATUSES = {s.value: s for s in Status}


def _transaction(row: Row[Any]) -> Transaction:
    values: tuple[Any, ...] = tuple(row)
    tx_id, user_id, type_, status, amount, currency, description, metadata, key, fingerprint = values[:10]
    refund_of, refunded, version, created_at, updated_at = values[10:]
    return Transaction(
        id=tx_id,
        user_id=user_id,
        type=_TYPES[type_],
        status=_STATUSES[status],
        amount_minor=amount,
        currency=currency,
        description=description,
        metadata=metadata,
        idempotency_key=key,
        refund_of=refund_of,
        refunded_minor=refunded,
        version=version,
        fingerprint=bytes(fingerprint),
        created_at=created_at,
        updated_at=updated_at,
    )


def _active(user_id: UUID) -> ColumnElement[bool]:
    """The user exists and is not disabled: folded into the main query to spare a round trip."""
    # select the id only: the service's role may read no other column of auth.users
    return select(users.c.id).where(users.c.id == user_id, users.c.disabled.is_(False)).exists()


class TransactionRepository:
    """The only place that knows SQL; every method is one statement."""

    def __init__(self, session: Connection):
        self._session = session

    def insert(self, user_id: UUID, new: NewTransaction, actor: str) -> Transaction | None:
        """Insert a PENDING transaction and its creation event in one statement.

        Returns None when the caller's idempotency key is taken (ON CONFLICT DO
        NOTHING waits for a concurrent insert of the same key to settle) or when
        the user is unknown or disabled (the row source is empty).
        """
        values = {
            "user_id": literal(user_id, Uuid),
            "type": literal(new.type.value, Text),
            "amount_minor": literal(new.amount_minor),
            "currency": literal(new.currency, Text),
            "description": literal(new.description, Text),
            "metadata": literal(dict(new.metadata), JSONB),
            "idempotency_key": literal(new.idempotency_key, Text),
            "request_fingerprint": literal(new.fingerprint(), LargeBinary),
            "refund_of": literal(new.refund_of, Uuid),
        }
        source = select(*(v.label(k) for k, v in values.items())).where(
            users.c.id == user_id, users.c.disabled.is_(False)
        )
        created = (
            insert(transactions)
            .from_select(list(values), source)
            .on_conflict_do_nothing(constraint="transactions_user_idempotency_key")
            .returning(*transactions.c)
            .cte("created")
        )
        event_source = select(
            created.c.id, null(), literal(Status.PENDING.value, Text), literal(actor, Text), literal("", Text)
        )
        creation_event = insert(events).from_select(_EVENT_COLUMNS, event_source).cte("creation_event")
        row = self._session.execute(select(created).add_cte(creation_event)).first()
        return _transaction(row) if row else None

    def by_key(self, user_id: UUID, key: str) -> Transaction | None:
        """The caller's transaction created with `key`, if any."""
        row = self._session.execute(
            select(transactions).where(_T.user_id == user_id, _T.idempotency_key == key)
        ).first()
        return _transaction(row) if row else None

    def account_active(self, user_id: UUID) -> bool:
        """True when the user exists and is not disabled (only id and disabled are readable)."""
        stmt = select(users.c.id).where(users.c.id == user_id, users.c.disabled.is_(False))
        return self._session.execute(stmt).first() is not None

    def get(
        self, tx_id: UUID, owner: UUID | None, *, lock: bool = False, active: UUID | None = None
    ) -> Transaction | None:
        """One transaction, only if `owner` owns it (None: anyone's) and the `active` user is.

        `lock` holds the row until commit.
        """
        stmt = select(transactions).where(_T.id == tx_id)
        if owner is not None:
            stmt = stmt.where(_T.user_id == owner)
        if active is not None:
            stmt = stmt.where(_active(active))
        if lock:
            stmt = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE: refunds may still reference it
        row = self._session.execute(stmt).first()
        return _transaction(row) if row else None

    def set_status(self, tx: Transaction, target: Status, actor: str, reason: str) -> Transaction:
        """Apply a decided change to a locked row and append its event, in one statement."""
        changed = (
            update(transactions)
            .where(_T.id == tx.id, _T.status == tx.status.value)
            .values(status=target.value, version=_T.version + 1, updated_at=func.now())
            .returning(*transactions.c)
            .cte("changed")
        )
        event_source = select(
            changed.c.id,
            literal(tx.status.value, Text),
            changed.c.status,
            literal(actor, Text),
            literal(reason, Text),
        )
        event = insert(events).from_select(_EVENT_COLUMNS, event_source).cte("status_event")
        return _transaction(self._session.execute(select(changed).add_cte(event)).one())

    def add_refunded(self, payment_id: UUID, delta: int) -> None:
        """Move a payment's refunded sum; the table's CHECK keeps it within 0..amount."""
        self._session.execute(
            update(transactions)
            .where(_T.id == payment_id)
            .values(refunded_minor=_T.refunded_minor + delta, version=_T.version + 1, updated_at=func.now())
        )

    def page(
        self, listing: ListFilter, after: Cursor | None, limit: int, active: UUID | None = None
    ) -> list[Transaction]:
        """Newest first by (created_at, id) below `after`; empty unless the `active` user is."""
        stmt = page_query(listing, after, limit)
        if active is not None:
            stmt = stmt.where(_active(active))
        return [_transaction(row) for row in self._session.execute(stmt)]

    def events(self, tx_id: UUID) -> Sequence[Event]:
        """The audit trail of one transaction, oldest first."""
        e = events.c
        stmt = select(events).where(e.transaction_id == tx_id).order_by(e.created_at, e.id)
        return [
            Event(
                id=r.id,
                transaction_id=r.transaction_id,
                old_status=Status(r.old_status) if r.old_status else None,
                new_status=Status(r.new_status),
                actor=r.actor,
                reason=r.reason,
                created_at=r.created_at,
            )
            for r in self._session.execute(stmt)
        ]


def page_query(listing: ListFilter, after: Cursor | None, limit: int) -> Select[Any]:
    """The keyset query of one page; an index on (user_id[, status], created_at, id) serves it unsorted."""
    conditions: list[ColumnElement[bool]] = [_T.user_id == listing.owner]
    if listing.status is not None:
        conditions.append(_T.status == listing.status.value)
    if listing.type is not None:
        conditions.append(_T.type == listing.type.value)
    if listing.currency is not None:
        conditions.append(_T.currency == listing.currency)
    if listing.created_from is not None:
        conditions.append(_T.created_at >= listing.created_from)
    if listing.created_to is not None:
        conditions.append(_T.created_at < listing.created_to)
    if after is not None:
        conditions.append(tuple_(_T.created_at, _T.id) < tuple_(after.created_at, after.id))
    return (
        select(transactions)
        .where(and_(*conditions))
        .order_by(_T.created_at.desc(), _T.id.desc())
        .limit(limit)
    )
