"""Reads of the outbox (payments.transaction_events) for the change stream: one method per statement.

`ChangeFeed` is what the stream needs of storage, so its logic runs unchanged on the in-memory
feed of the tests (tests/stream/memory_feed.py). Each method is one scope of the executor; rows
become domain objects by name, as in `repository.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from uuid import UUID

from payments_common.db import Database, Row
from transaction_service import sql
from transaction_service.changes import CatchUp, Change, Position, Read
from transaction_service.domain import Status
from transaction_service.repository import Account, TransactionRepository, transaction

_STATUSES = {s.value: s for s in Status}


class ChangeFeed(Protocol):
    """The outbox reads of the change stream."""

    def start(self, caller: Account, timeout_ms: int) -> Position | None:
        """The current horizon, or None when the caller's account is not active."""
        ...

    def read(self, after: Position, limit: int) -> Read:
        """The next changes after `after` that no running transaction can precede (every user's)."""
        ...

    def catch_up(
        self, after: Position, upto: Position, owner: UUID | None, scan: int, timeout_ms: int
    ) -> CatchUp:
        """Changes of `owner` (None: anyone) in (after, upto], scanning at most `scan` events."""
        ...

    def inactive(self, accounts: Iterable[Account]) -> set[Account]:
        """Those of `accounts` that are disabled, deleted, or lost a claim of their token."""
        ...


def change(row: Row) -> Change:
    """A change from a row holding `sql.CHANGE_COLUMNS`, by name."""
    return Change(
        event_id=row.event_id,
        position=Position(int(row.xact_id), row.position),
        transaction=transaction(row),
        old_status=_STATUSES[row.old_status] if row.old_status else None,
        actor=row.actor,
        reason=row.reason,
        occurred_at=row.occurred_at,
    )


def _params(name: str, position: Position) -> dict[str, str | int]:
    return {f"{name}_xact": str(position.xact), f"{name}_position": position.seq}


class PostgresFeed:
    """The stream's statements of `sql` on the executor it is given."""

    def __init__(self, db: Database):
        self._db = db

    def start(self, caller: Account, timeout_ms: int) -> Position | None:
        """Two reads in one scope: the caller's account (with its claims), then the horizon."""
        with self._db.statement(timeout_ms) as session:
            if not TransactionRepository(session).caller_active(caller):
                return None
            return Position.horizon(int(session.value(sql.STREAM_HORIZON)))

    def read(self, after: Position, limit: int) -> Read:
        """One statement: the batch, the horizon and whether changes wait behind a running transaction."""
        with self._db.statement() as session:
            rows = session.rows(sql.STREAM_READ, limit=limit, **_params("after", after))
        head = rows[0]
        changes = [change(row) for row in rows if row.event_id is not None]
        return Read(changes, Position.horizon(int(head.horizon)), bool(head.blocked), len(changes) >= limit)

    def catch_up(
        self, after: Position, upto: Position, owner: UUID | None, scan: int, timeout_ms: int
    ) -> CatchUp:
        """One statement: at most `scan` events of the range, those `owner` may see, and the last scanned."""
        params = {**_params("after", after), **_params("upto", upto), "owner": owner, "scan": scan}
        with self._db.statement(timeout_ms) as session:
            rows = session.rows(sql.STREAM_CATCH_UP, **params)
        if not rows:
            return CatchUp([], None)
        scanned = Position(int(rows[0].scanned_xact), rows[0].scanned_position)
        return CatchUp([change(row) for row in rows if row.event_id is not None], scanned)

    def inactive(self, accounts: Iterable[Account]) -> set[Account]:
        """One read per distinct account, in one scope (the use cases' own check, claims included)."""
        with self._db.statement() as session:
            repository = TransactionRepository(session)
            return {account for account in set(accounts) if not repository.caller_active(account)}
