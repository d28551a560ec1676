"""An in-memory `ChangeFeed`: the outbox's semantics (`transaction_service.sql`), no PostgreSQL.

Events get (xact id, sequence) positions; a transaction's events become visible when it commits,
and the horizon is the smallest xact id still running, as `pg_snapshot_xmin` would say. `reads`
and `catch_ups` count the statements the stream ran; `down` makes every statement fail as a lost
database does.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID, uuid4

from payments_common.errors import Unavailable
from transaction_service.changes import CatchUp, Change, Position, Read
from transaction_service.domain import Status, Transaction, TxType
from transaction_service.repository import Account


def _transaction(owner: UUID, status: Status) -> Transaction:
    now = datetime.now(UTC)
    return Transaction(
        id=uuid4(),
        user_id=owner,
        type=TxType.PAYMENT,
        status=status,
        amount_minor=100,
        currency="EUR",
        description="",
        metadata={},
        idempotency_key=uuid4().hex,
        refund_of=None,
        refunded_minor=0,
        version=1,
        request_fingerprint=b"\0" * 32,
        created_at=now,
        updated_at=now,
    )


class MemoryFeed:
    """Committed events, running transactions and disabled accounts, behind one lock."""

    def __init__(self) -> None:
        self.visible: list[Change] = []
        self.inactive_accounts: set[Account] = set()
        self.reads = 0
        self.catch_ups = 0
        self.down = False
        self._pending: dict[int, list[Change]] = {}
        self._next_xact, self._next_seq = 1000, 1
        self._lock = threading.Lock()

    # --- writers ---

    def begin(self) -> int:
        """A new database transaction; it holds the horizon back until it ends."""
        with self._lock:
            xact, self._next_xact = self._next_xact, self._next_xact + 1
            self._pending[xact] = []
            return xact

    def write(self, xact: int, owner: UUID) -> Change:
        """A creation event in the open transaction `xact` (invisible until it commits)."""
        with self._lock:
            seq, self._next_seq = self._next_seq, self._next_seq + 1
            change = Change(
                uuid4(),
                Position(xact, seq),
                _transaction(owner, Status.PENDING),
                None,
                str(owner),
                "",
                datetime.now(UTC),
            )
            self._pending[xact].append(change)
            return change

    def commit(self, xact: int) -> None:
        with self._lock:
            for change in self._pending.pop(xact):
                bisect.insort(self.visible, change, key=lambda c: c.position)

    def change(self, owner: UUID) -> Change:
        """One committed change of `owner` (its own transaction)."""
        xact = self.begin()
        change = self.write(xact, owner)
        self.commit(xact)
        return change

    def horizon(self) -> Position:
        with self._lock:
            return Position.horizon(min(self._pending, default=self._next_xact))

    # --- ChangeFeed ---

    def _check(self) -> None:
        if self.down:
            raise Unavailable("the database is unreachable; retry", retry_after=1.0)

    def start(self, caller: Account, timeout_ms: int) -> Position | None:
        self._check()
        return None if caller in self.inactive_accounts else self.horizon()

    def read(self, after: Position, limit: int) -> Read:
        self._check()
        horizon = self.horizon()
        with self._lock:
            self.reads += 1
            ready = [c for c in self.visible if after < c.position and c.position.xact < horizon.xact]
            blocked = any(c.position.xact >= horizon.xact for c in self.visible)
        return Read(ready[:limit], horizon, blocked, len(ready) >= limit)

    def catch_up(
        self, after: Position, upto: Position, owner: UUID | None, scan: int, timeout_ms: int
    ) -> CatchUp:
        self._check()
        with self._lock:
            self.catch_ups += 1
            scanned = [c for c in self.visible if after < c.position <= upto][:scan]
        if not scanned:
            return CatchUp([], None)
        return CatchUp([c for c in scanned if owner is None or c.owner == owner], scanned[-1].position)

    def inactive(self, accounts: Iterable[Account]) -> set[Account]:
        self._check()
        return {account for account in accounts if account in self.inactive_accounts}
