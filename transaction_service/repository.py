"""Reads and writes of payments.* in one scope: one method per statement of `sql`.

Rows come back by column name and become domain objects here; nothing else knows SQL. `Store`
opens the scopes a use case asks for (`transaction` or `statement`) with a repository inside,
so the use cases run unchanged on the in-memory store of the unit tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from payments_common.db import Database, Row, Session
from transaction_service import domain, sql
from transaction_service.domain import Event, NewTransaction, Status, Transaction, TxType
from transaction_service.pagination import Cursor, ListFilter

_TYPES = {t.value: t for t in TxType}
_STATUSES = {s.value: s for s in Status}
_RELEASING = sorted(s.value for s in domain.RELEASING)


class Account(NamedTuple):
    """A caller whose account must exist, be enabled and still hold `claims`: a user or a service."""

    kind: str  # "user" or "service", as in the token
    id: UUID
    claims: tuple[str, ...] = ()  # the token's powers the account must still have: roles or scopes


def _caller(account: Account) -> dict[str, UUID | list[str] | None]:
    """The parameters of `sql.CALLER_ACTIVE` (the other kind's id is NULL)."""
    return {
        "caller_user": account.id if account.kind == "user" else None,
        "caller_service": account.id if account.kind == "service" else None,
        "caller_claims": list(account.claims),
    }


def transaction(row: Row) -> Transaction:
    """A domain transaction from a row holding `sql.TRANSACTION_FIELDS`, by name."""
    values = {name: getattr(row, name) for name in sql.TRANSACTION_FIELDS}
    values["type"] = _TYPES[values["type"]]
    values["status"] = _STATUSES[values["status"]]
    values["request_fingerprint"] = bytes(values["request_fingerprint"])
    return Transaction(**values)


class Repository(Protocol):
    """What the use cases need of storage (PostgreSQL here, memory in the unit tests)."""

    def insert(
        self, owner: UUID, new: NewTransaction, actor: str, processor: str | None = None
    ) -> Transaction | None: ...
    def by_key(self, owner: UUID, key: str) -> Transaction | None: ...
    def caller_active(self, caller: Account) -> bool: ...
    def get(self, tx_id: UUID, owner: UUID | None, caller: Account) -> Transaction | None: ...
    def lock_payment(self, payment_id: UUID, owner: UUID, caller: Account) -> Transaction | None: ...
    def add_refunded(self, payment_id: UUID, delta: int) -> None: ...
    def change_status(
        self,
        tx_id: UUID,
        target: Status,
        etag: int | None,
        *,
        owner: UUID | None,
        caller: Account,
        actor: str,
        reason: str,
    ) -> tuple[bool, Transaction] | None: ...
    def page(
        self, listing: ListFilter, after: Cursor | None, limit: int, caller: Account
    ) -> list[Transaction]: ...
    def events(self, tx_id: UUID) -> Sequence[Event]: ...


class Store(Protocol):
    """Opens the scope a use case runs in, with a repository inside."""

    def transaction(self, timeout_ms: int) -> AbstractContextManager[Repository]: ...
    def statement(self, timeout_ms: int) -> AbstractContextManager[Repository]: ...


class TransactionRepository:
    """The statements of `sql` on one database session."""

    def __init__(self, session: Session):
        self._session = session

    def _one(self, statement: str, **params: Any) -> Transaction | None:
        row = self._session.one(statement, **params)
        return transaction(row) if row is not None else None

    def insert(
        self, owner: UUID, new: NewTransaction, actor: str, processor: str | None = None
    ) -> Transaction | None:
        """A PENDING transaction and its creation event (queued for `processor`, if any); None when
        the key is taken or the owner inactive.
        """
        return self._one(
            sql.INSERT_PENDING_WITH_EVENT,
            owner=owner,
            type=new.type.value,
            amount_minor=new.amount_minor,
            currency=new.currency,
            description=new.description,
            metadata=json.dumps(dict(new.metadata)),
            idempotency_key=new.idempotency_key,
            request_fingerprint=new.fingerprint(),
            refund_of=new.refund_of,
            processor=processor,
            payment_method=new.payment_method,
            actor=actor,
        )

    def by_key(self, owner: UUID, key: str) -> Transaction | None:
        """The owner's transaction created with `key`, if any."""
        return self._one(sql.GET_BY_IDEMPOTENCY_KEY, owner=owner, idempotency_key=key)

    def caller_active(self, caller: Account) -> bool:
        """True when the caller's account exists and is not disabled."""
        return bool(self._session.value(sql.IS_CALLER_ACTIVE, **_caller(caller)))

    def get(self, tx_id: UUID, owner: UUID | None, caller: Account) -> Transaction | None:
        """One transaction, if `owner` owns it (None: anyone's) and the caller is active."""
        return self._one(sql.GET_VISIBLE, id=tx_id, owner=owner, **_caller(caller))

    def lock_payment(self, payment_id: UUID, owner: UUID, caller: Account) -> Transaction | None:
        """The owner's transaction `payment_id`, locked until the end of the transaction."""
        return self._one(sql.LOCK_PAYMENT_FOR_REFUND, id=payment_id, owner=owner, **_caller(caller))

    def add_refunded(self, payment_id: UUID, delta: int) -> None:
        """Move a payment's refunded sum (the table's CHECK keeps it within 0..amount)."""
        self._session.rows(sql.ADD_REFUNDED, id=payment_id, delta=delta)

    def change_status(
        self,
        tx_id: UUID,
        target: Status,
        etag: int | None,
        *,
        owner: UUID | None,
        caller: Account,
        actor: str,
        reason: str,
    ) -> tuple[bool, Transaction] | None:
        """Compare-and-set: (True, new state), (False, current state), or None if not visible."""
        row = self._session.one(
            sql.CHANGE_STATUS,
            id=tx_id,
            owner=owner,
            target=target.value,
            from_statuses=domain.sources(target),
            etag=etag,
            actor=actor,
            reason=reason,
            releasing=_RELEASING,
            **_caller(caller),
        )
        return (bool(row.changed), transaction(row)) if row is not None else None

    def page(
        self, listing: ListFilter, after: Cursor | None, limit: int, caller: Account
    ) -> list[Transaction]:
        """Newest first by (created_at, id) below `after`; empty unless the caller is active."""
        statement, params = page_query(listing, after, limit, caller)
        return [transaction(row) for row in self._session.rows(statement, **params)]

    def events(self, tx_id: UUID) -> Sequence[Event]:
        """The audit trail of one transaction, oldest first."""
        return [
            Event(
                id=row.id,
                transaction_id=row.transaction_id,
                old_status=_STATUSES[row.old_status] if row.old_status else None,
                new_status=_STATUSES[row.new_status],
                actor=row.actor,
                reason=row.reason,
                created_at=row.created_at,
            )
            for row in self._session.rows(sql.EVENTS_OF, id=tx_id)
        ]


def page_query(
    listing: ListFilter, after: Cursor | None, limit: int, caller: Account
) -> tuple[str, dict[str, Any]]:
    """The statement and parameters of one page (newest first, below `after`)."""
    optional: dict[str, Any] = {
        "status": listing.status.value if listing.status is not None else None,
        "type": listing.type.value if listing.type is not None else None,
        "currency": listing.currency,
        "created_from": listing.created_from,
        "created_to": listing.created_to,
    }
    params = {name: value for name, value in optional.items() if value is not None}
    filters = set(params)
    if after is not None:
        filters.add("after")
        params.update(after_at=after.created_at, after_id=after.id)
    params.update(owner=listing.owner, limit=limit, **_caller(caller))
    return sql.list_page(frozenset(filters)), params


class PostgresStore:
    """The scopes of the one executor, each with a `TransactionRepository`."""

    def __init__(self, db: Database):
        self._db = db

    @contextmanager
    def transaction(self, timeout_ms: int) -> Iterator[TransactionRepository]:
        """Several statements, atomic."""
        with self._db.transaction(timeout_ms) as session:
            yield TransactionRepository(session)

    @contextmanager
    def statement(self, timeout_ms: int) -> Iterator[TransactionRepository]:
        """At most one write, committed by itself."""
        with self._db.statement(timeout_ms) as session:
            yield TransactionRepository(session)
