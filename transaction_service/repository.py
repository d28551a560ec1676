"""Reads and writes of payments.* inside one unit of work; rows come back as domain objects.

Every statement is written with SQLAlchemy Core against `models`, with named bind parameters,
and compiled to SQL text **once** (per shape, for the optional filters). On the hot path a call
only sends that text with its parameters (`payments_common.db.fetch`): building, cache-keying and
compiling a Core statement on every call was the largest cost per RPC in the profile
(bench/README.md). psycopg2 returns UUIDs, JSONB and timestamps natively.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert, psycopg2
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import DateTime, Integer, LargeBinary, Text, Uuid

from payments_common.db import fetch
from transaction_service.domain import RELEASING, Event, NewTransaction, Status, Transaction, TxType
from transaction_service.models import events, service_principals, transactions, users
from transaction_service.pagination import Cursor, ListFilter

_T = transactions.c
_E = events.c
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
_ONE: ColumnElement[int] = literal_column("1", Integer)
_DIALECT = psycopg2.dialect()  # type: ignore[no-untyped-call]


def _sql(stmt: ClauseElement) -> str:
    """The SQL text psycopg2 receives for `stmt` (pyformat parameters named like the bindparams)."""
    compiled = stmt.compile(dialect=_DIALECT)
    constants = sorted(name for name, value in compiled.params.items() if value is not None)
    assert not constants, f"write constants with literal_column, not as parameters: {constants}"
    return str(compiled)


def _param(name: str, type_: Any) -> ColumnElement[Any]:
    """A typed parameter: an explicit CAST, so PostgreSQL never has to guess it from context."""
    return cast(bindparam(name), type_)


def _transaction(values: Sequence[Any]) -> Transaction:
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


class Account(NamedTuple):
    """A caller whose account must exist and not be disabled: a user or a service principal."""

    kind: str  # "user" or "service", as in the token
    id: UUID


_ACCOUNTS = {"user": users, "service": service_principals}


def _active(kind: str) -> ColumnElement[bool]:
    """The `active` account exists and is not disabled: folded into the main query to spare a round trip."""
    # select the id only: the service's role may read no other column of these tables
    table = _ACCOUNTS[kind]
    return (
        select(table.c.id).where(table.c.id == _param("active", Uuid), table.c.disabled.is_(False)).exists()
    )


def _insert_sql() -> str:
    """INSERT ... SELECT from the active owner ... ON CONFLICT DO NOTHING RETURNING, plus its event."""
    values = {
        "user_id": _param("user_id", Uuid),
        "type": _param("type", Text),
        "amount_minor": _param("amount_minor", BigInteger),
        "currency": _param("currency", Text),
        "description": _param("description", Text),
        "metadata": _param("metadata", JSONB),
        "idempotency_key": _param("idempotency_key", Text),
        "request_fingerprint": _param("request_fingerprint", LargeBinary),
        "refund_of": _param("refund_of", Uuid),
    }
    source = select(*(v.label(k) for k, v in values.items())).where(
        users.c.id == _param("user_id", Uuid), users.c.disabled.is_(False)
    )
    created = (
        insert(transactions)
        .from_select(list(values), source)
        .on_conflict_do_nothing(constraint="transactions_user_idempotency_key")
        .returning(*transactions.c)
        .cte("created")
    )
    event_source = select(
        created.c.id,
        null(),
        literal_column(f"'{Status.PENDING.value}'"),
        _param("actor", Text),
        literal_column("''"),
    )
    creation_event = insert(events).from_select(_EVENT_COLUMNS, event_source).cte("creation_event")
    return _sql(select(created).add_cte(creation_event))


@functools.cache
def _settle_sql(owned: bool, active: str | None, etag: bool) -> str:
    """Compare-and-set: a PENDING row (at version `etag`) becomes `target`, with its event and, for a
    refund that fails or is cancelled, the amount given back to its payment; all in one statement.

    Row locks are taken in the order of every other path: the transaction, then its payment.
    """
    conditions = [_T.id == _param("id", Uuid), _T.status == literal_column(f"'{Status.PENDING.value}'")]
    if owned:
        conditions.append(_T.user_id == _param("owner", Uuid))
    if active:
        conditions.append(_active(active))
    if etag:  # a BIGINT: an etag beyond the INTEGER range matches nothing instead of failing
        conditions.append(_T.version == _param("etag", BigInteger))
    changed = (
        update(transactions)
        .where(*conditions)
        .values(status=_param("target", Text), version=_T.version + _ONE, updated_at=func.now())
        .returning(*transactions.c)
        .cte("changed")
    )
    event_source = select(
        changed.c.id,
        literal_column(f"'{Status.PENDING.value}'"),
        changed.c.status,
        _param("actor", Text),
        _param("reason", Text),
    )
    event = insert(events).from_select(_EVENT_COLUMNS, event_source).cte("status_event")
    released = (
        update(transactions)
        .where(
            _T.id == changed.c.refund_of,
            changed.c.type == literal_column(f"'{TxType.REFUND.value}'"),
            changed.c.status.in_([literal_column(f"'{s.value}'") for s in sorted(RELEASING)]),
        )
        .values(
            refunded_minor=_T.refunded_minor - changed.c.amount_minor,
            version=_T.version + _ONE,
            updated_at=func.now(),
        )
        .cte("released")
    )
    return _sql(select(changed).add_cte(event, released))


_INSERT = _insert_sql()
_BY_KEY = _sql(
    select(transactions).where(_T.user_id == _param("owner", Uuid), _T.idempotency_key == _param("key", Text))
)
_ACCOUNT_ACTIVE = {kind: _sql(select(_active(kind))) for kind in _ACCOUNTS}
_ADD_REFUNDED = _sql(
    update(transactions)
    .where(_T.id == _param("id", Uuid))
    .values(
        refunded_minor=_T.refunded_minor + _param("delta", BigInteger),
        version=_T.version + _ONE,
        updated_at=func.now(),
    )
)
_EVENTS = _sql(select(events).where(_E.transaction_id == _param("id", Uuid)).order_by(_E.created_at, _E.id))


@functools.cache
def _get_sql(owned: bool, active: str | None, lock: bool) -> str:
    stmt = select(transactions).where(_T.id == _param("id", Uuid))
    if owned:
        stmt = stmt.where(_T.user_id == _param("owner", Uuid))
    if active:
        stmt = stmt.where(_active(active))
    if lock:
        stmt = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE: refunds may still reference it
    return _sql(stmt)


@functools.cache
def _page_sql(filters: frozenset[str], after: bool, active: str | None) -> str:
    """The keyset query of one page; an index on (user_id[, status], created_at, id) serves it unsorted."""
    conditions: list[ColumnElement[bool]] = [_T.user_id == _param("owner", Uuid)]
    if "status" in filters:
        conditions.append(_T.status == _param("status", Text))
    if "type" in filters:
        conditions.append(_T.type == _param("type", Text))
    if "currency" in filters:
        conditions.append(_T.currency == _param("currency", Text))
    if "created_from" in filters:
        conditions.append(_T.created_at >= _param("created_from", DateTime(timezone=True)))
    if "created_to" in filters:
        conditions.append(_T.created_at < _param("created_to", DateTime(timezone=True)))
    if after:
        cursor = tuple_(_param("after_at", DateTime(timezone=True)), _param("after_id", Uuid))
        conditions.append(tuple_(_T.created_at, _T.id) < cursor)
    if active:
        conditions.append(_active(active))
    stmt = (
        select(transactions)
        .where(and_(*conditions))
        .order_by(_T.created_at.desc(), _T.id.desc())
        .limit(bindparam("limit"))
    )
    return _sql(stmt)


def page_query(
    listing: ListFilter, after: Cursor | None, limit: int, active: Account | None = None
) -> tuple[str, dict[str, Any]]:
    """The SQL text and parameters of one page (newest first, below `after`)."""
    optional: Mapping[str, Any] = {
        "status": listing.status.value if listing.status is not None else None,
        "type": listing.type.value if listing.type is not None else None,
        "currency": listing.currency,
        "created_from": listing.created_from,
        "created_to": listing.created_to,
    }
    params = {k: v for k, v in optional.items() if v is not None}
    sql = _page_sql(frozenset(params), after is not None, active.kind if active else None)
    params.update(owner=listing.owner, limit=limit, active=active.id if active else None)
    if after is not None:
        params.update(after_at=after.created_at, after_id=after.id)
    return sql, params


class TransactionRepository:
    """The only place that knows SQL; every method is one statement."""

    def __init__(self, session: Connection):
        self._session = session

    def _rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return fetch(self._session, sql, params)

    def _one(self, sql: str, params: dict[str, Any]) -> Transaction | None:
        rows = fetch(self._session, sql, params)
        return _transaction(rows[0]) if rows else None

    def insert(self, user_id: UUID, new: NewTransaction, actor: str) -> Transaction | None:
        """Insert a PENDING transaction and its creation event in one statement.

        Returns None when the caller's idempotency key is taken (ON CONFLICT DO
        NOTHING waits for a concurrent insert of the same key to settle) or when
        the user is unknown or disabled (the row source is empty).
        """
        params = {
            "user_id": user_id,
            "type": new.type.value,
            "amount_minor": new.amount_minor,
            "currency": new.currency,
            "description": new.description,
            "metadata": json.dumps(dict(new.metadata)),
            "idempotency_key": new.idempotency_key,
            "request_fingerprint": new.fingerprint(),
            "refund_of": new.refund_of,
            "actor": actor,
        }
        return self._one(_INSERT, params)

    def by_key(self, user_id: UUID, key: str) -> Transaction | None:
        """The caller's transaction created with `key`, if any."""
        return self._one(_BY_KEY, {"owner": user_id, "key": key})

    def account_active(self, account: Account) -> bool:
        """True when the account exists and is not disabled (only id and disabled are readable)."""
        return bool(self._rows(_ACCOUNT_ACTIVE[account.kind], {"active": account.id})[0][0])

    def get(
        self, tx_id: UUID, owner: UUID | None, *, lock: bool = False, active: Account | None = None
    ) -> Transaction | None:
        """One transaction, only if `owner` owns it (None: anyone's) and the `active` account is active.

        `lock` holds the row until commit.
        """
        sql = _get_sql(owner is not None, active.kind if active else None, lock)
        return self._one(sql, {"id": tx_id, "owner": owner, "active": active.id if active else None})

    def settle_pending(
        self,
        tx_id: UUID,
        target: Status,
        *,
        owner: UUID | None,
        active: Account | None,
        etag: int | None,
        actor: str,
        reason: str,
    ) -> Transaction | None:
        """Change a PENDING transaction (at version `etag`, if given) in one statement, or None.

        None means nothing matched: the row is missing, not the caller's, no longer PENDING,
        at another version, or the caller is inactive; the locked path then finds out which.
        """
        sql = _settle_sql(owner is not None, active.kind if active else None, etag is not None)
        params = {
            "id": tx_id,
            "owner": owner,
            "active": active.id if active else None,
            "etag": etag,
            "target": target.value,
            "actor": actor,
            "reason": reason,
        }
        return self._one(sql, params)

    def add_refunded(self, payment_id: UUID, delta: int) -> None:
        """Move a payment's refunded sum; the table's CHECK keeps it within 0..amount."""
        self._rows(_ADD_REFUNDED, {"id": payment_id, "delta": delta})

    def page(
        self, listing: ListFilter, after: Cursor | None, limit: int, active: Account | None = None
    ) -> list[Transaction]:
        """Newest first by (created_at, id) below `after`; empty unless the `active` account is active."""
        sql, params = page_query(listing, after, limit, active)
        return [_transaction(row) for row in self._rows(sql, params)]

    def events(self, tx_id: UUID) -> Sequence[Event]:
        """The audit trail of one transaction, oldest first."""
        return [
            Event(
                id=event_id,
                transaction_id=transaction_id,
                old_status=_STATUSES[old] if old else None,
                new_status=_STATUSES[new],
                actor=actor,
                reason=reason,
                created_at=created_at,
            )
            for event_id, transaction_id, old, new, actor, reason, created_at in self._rows(
                _EVENTS, {"id": tx_id}
            )
        ]
