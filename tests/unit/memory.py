"""An in-memory `Store` for the unit tests: the semantics of `transaction_service.sql`, no PostgreSQL.

Its repository (`memory_repository.MemoryRepository`) mirrors one statement of `sql` per method,
checks included. A transaction scope undoes its writes when it ends with an exception; a statement
scope allows one write, committed by itself, as `payments_common.db` does. `calls` records every
scope, statement and end in order, so a test can assert a lock order; `race_next_insert` and
`on_next_insert` play a concurrent request, whose writes are committed and survive a rollback.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from uuid import UUID, uuid4

from tests.unit.memory_repository import MemoryRepository, Scope, check, new_row
from transaction_service.domain import Event, NewTransaction, Status, Transaction
from transaction_service.repository import Account

START = datetime(2026, 1, 1, tzinfo=UTC)


def _nothing() -> None:
    pass


class InMemoryStore:
    """Committed rows, events and accounts; scopes hand out a `MemoryRepository` over them."""

    def __init__(self, tick: timedelta = timedelta(seconds=1)) -> None:
        self.rows: dict[UUID, Transaction] = {}
        self.events: list[Event] = []
        self.accounts: dict[Account, bool] = {}  # account -> enabled
        self.calls: list[str] = []
        self.timeouts: list[int] = []
        self.now = START
        self.tick = tick  # the clock advances by this on every write; zero gives equal created_at
        self._next_inserts: deque[tuple[Callable[[], object], bool]] = deque()

    def clock(self) -> datetime:
        self.now += self.tick
        return self.now

    # --- accounts (auth.users, auth.service_principals) ---

    def add_account(self, kind: str) -> UUID:
        account = Account(kind, uuid4())
        self.accounts[account] = True
        return account.id

    def disable(self, account_id: UUID) -> None:
        """Disable the user or service principal `account_id` (committed at once)."""
        for account in self.accounts:
            if account.id == account_id:
                self.accounts[account] = False

    def is_active(self, account: Account) -> bool:
        """Enabled, by kind and id (the unit tier grants every claim a token makes)."""
        return self.accounts.get(Account(account.kind, account.id), False)

    # --- another session's committed work ---

    def seed(
        self, owner: UUID, new: NewTransaction, *, status: Status = Status.PENDING, refunded_minor: int = 0
    ) -> Transaction:
        """A committed row (and its creation event), as if written earlier by another request."""
        tx = new_row(owner, new, self.clock(), status, refunded_minor)
        check(self.rows, tx)
        self.rows[tx.id] = tx
        self.events.append(Event(uuid4(), tx.id, None, tx.status, "seed", "", tx.created_at))
        return tx

    def race_next_insert(self, winner: tuple[UUID, NewTransaction] | None = None) -> None:
        """The next insert finds its key taken by a concurrent request.

        With `winner` (owner, request) that request's row is committed just before the insert,
        which then conflicts with it; without, the insert returns None and no row appears.
        """
        self._next_inserts.append((partial(self.seed, *winner) if winner else _nothing, winner is None))

    def on_next_insert(self, action: Callable[[], object]) -> None:
        """Run `action` (e.g. disable the owner) just before the next insert is evaluated."""
        self._next_inserts.append((action, False))

    def interfere(self) -> bool:
        """Play the next concurrent request, if any; True when the insert is to find its key taken."""
        if not self._next_inserts:
            return False
        action, lost = self._next_inserts.popleft()
        action()
        return lost

    def events_of(self, tx_id: UUID) -> list[Event]:
        return sorted(
            (e for e in self.events if e.transaction_id == tx_id), key=lambda e: (e.created_at, e.id)
        )

    @contextmanager
    def transaction(self, timeout_ms: int) -> Iterator[MemoryRepository]:
        """Several statements, atomic: an exception undoes this scope's writes (not others')."""
        self.calls.append("transaction")
        self.timeouts.append(timeout_ms)
        scope = Scope("transaction")
        try:
            yield MemoryRepository(self, scope)
        except BaseException:
            for undo in reversed(scope.undo):
                undo()
            self.calls.append("rollback")
            raise
        self.calls.append("commit")

    @contextmanager
    def statement(self, timeout_ms: int) -> Iterator[MemoryRepository]:
        """At most one write, committed by itself (an exception afterwards does not undo it)."""
        self.calls.append("statement")
        self.timeouts.append(timeout_ms)
        yield MemoryRepository(self, Scope("statement"))
