"""The repository of the in-memory store: one method per statement of `transaction_service.sql`.

Each method mirrors its statement: the owner scope (`None`: any owner), the active caller folded
into every main statement, the compare-and-set of a status change with the release of a failed or
cancelled refund's amount, and the table's CHECKs and keys (`check`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from transaction_service import domain
from transaction_service.domain import Event, NewTransaction, Status, Transaction, TxType
from transaction_service.pagination import Cursor, ListFilter
from transaction_service.repository import Account

if TYPE_CHECKING:
    from tests.unit.memory import InMemoryStore


def new_row(
    owner: UUID, new: NewTransaction, now: datetime, status: Status = Status.PENDING, refunded_minor: int = 0
) -> Transaction:
    """The row the insert writes: the table's defaults and the request's fingerprint."""
    return Transaction(
        id=uuid4(),
        user_id=owner,
        type=new.type,
        status=status,
        amount_minor=new.amount_minor,
        currency=new.currency,
        description=new.description,
        metadata=dict(new.metadata),
        idempotency_key=new.idempotency_key,
        refund_of=new.refund_of,
        refunded_minor=refunded_minor,
        version=1,
        request_fingerprint=new.fingerprint(),
        created_at=now,
        updated_at=now,
    )


class IntegrityViolation(Exception):
    """What PostgreSQL would refuse with a constraint error: a bug of the use case (INTERNAL)."""


@dataclass
class Scope:
    """One scope's bookkeeping: its undo log, the payments it locked, the writes it sent."""

    kind: str  # "transaction" or "statement"
    undo: list[Callable[[], None]] = field(default_factory=list)
    locked: set[UUID] = field(default_factory=set)
    writes: int = 0


def check(rows: Mapping[UUID, Transaction], tx: Transaction) -> None:
    """The table's CHECKs and the composite foreign key of a refund."""
    if not 0 <= tx.refunded_minor <= tx.amount_minor:
        raise IntegrityViolation(f"transactions_refunded_within_amount: {tx.refunded_minor}")
    if tx.type != TxType.PAYMENT and tx.refunded_minor:
        raise IntegrityViolation("transactions_only_payments_refunded")
    if (tx.type == TxType.REFUND) != (tx.refund_of is not None):
        raise IntegrityViolation("transactions_refund_of_iff_refund")
    if tx.refund_of is not None:
        target = rows.get(tx.refund_of)
        if target is None or (target.user_id, target.currency) != (tx.user_id, tx.currency):
            raise IntegrityViolation("transactions_refund_of_fkey")


class MemoryRepository:
    """The statements of `sql`, one method each, on the store's rows."""

    def __init__(self, store: InMemoryStore, scope: Scope) -> None:
        self._store = store
        self._scope = scope

    def _call(self, name: str, *, write: bool = False) -> None:
        self._store.calls.append(name)
        if write:  # counted per statement, as `Session` does, whether or not a row changes
            self._scope.writes += 1
            if self._scope.kind == "statement" and self._scope.writes > 1:
                raise RuntimeError("a second write in db.statement(): use db.transaction() to keep it atomic")

    def _put(self, tx: Transaction) -> None:
        check(self._store.rows, tx)
        rows, before = self._store.rows, self._store.rows.get(tx.id)
        rows[tx.id] = tx

        def undo() -> None:
            if before is None:
                del rows[tx.id]
            else:
                rows[tx.id] = before

        self._scope.undo.append(undo)

    def _event(self, tx: Transaction, old: Status | None, actor: str, reason: str) -> None:
        event = Event(uuid4(), tx.id, old, tx.status, actor, reason, tx.updated_at)
        self._store.events.append(event)
        self._scope.undo.append(lambda: self._store.events.remove(event))

    def _visible(self, tx_id: UUID, owner: UUID | None, caller: Account) -> Transaction | None:
        tx = self._store.rows.get(tx_id)
        if tx is None or (owner is not None and tx.user_id != owner) or not self._store.is_active(caller):
            return None
        return tx

    def insert(
        self, owner: UUID, new: NewTransaction, actor: str, processor: str | None = None
    ) -> Transaction | None:
        self._call("insert", write=True)
        lost = self._store.interfere()
        taken = any(t.user_id == owner and t.idempotency_key == new.idempotency_key for t in self._rows())
        if lost or taken or not self._store.is_active(Account("user", owner)):
            return None
        tx = replace(new_row(owner, new, self._store.clock()), processor=processor)
        self._put(tx)
        self._event(tx, None, actor, "")
        return tx

    def _rows(self) -> list[Transaction]:
        return list(self._store.rows.values())

    def by_key(self, owner: UUID, key: str) -> Transaction | None:
        self._call("by_key")
        return next((t for t in self._rows() if t.user_id == owner and t.idempotency_key == key), None)

    def caller_active(self, caller: Account) -> bool:
        self._call("caller_active")
        return self._store.is_active(caller)

    def get(self, tx_id: UUID, owner: UUID | None, caller: Account) -> Transaction | None:
        self._call("get")
        return self._visible(tx_id, owner, caller)

    def lock_payment(self, payment_id: UUID, owner: UUID, caller: Account) -> Transaction | None:
        self._call("lock_payment")
        payment = self._visible(payment_id, owner, caller)
        if payment is not None and self._scope.kind == "transaction":  # a statement's lock ends with it
            self._scope.locked.add(payment.id)
        return payment

    def add_refunded(self, payment_id: UUID, delta: int) -> None:
        self._call("add_refunded", write=True)
        if payment_id not in self._scope.locked:  # else the remaining amount checked may be stale
            raise AssertionError("a payment's refunded sum moved without holding its lock")
        payment = self._store.rows.get(payment_id)
        if payment is not None:
            self._move_refunded(payment, delta)

    def _move_refunded(self, payment: Transaction, delta: int) -> None:
        moved = payment.refunded_minor + delta
        self._put(
            replace(payment, refunded_minor=moved, version=payment.version + 1, updated_at=self._store.now)
        )

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
        self._call("change_status", write=True)
        found = self._visible(tx_id, owner, caller)
        if found is None:
            return None
        if found.status.value not in domain.sources(target) or (etag is not None and found.version != etag):
            return False, found
        if found.processor is not None and target != Status.CANCELLED:  # as sql.CHANGE_STATUS
            return False, found
        changed = replace(found, status=target, version=found.version + 1, updated_at=self._store.clock())
        self._put(changed)
        self._event(changed, found.status, actor, reason)
        payment = self._store.rows.get(changed.refund_of) if changed.refund_of else None
        if payment is not None and changed.type == TxType.REFUND and target in domain.RELEASING:
            self._move_refunded(payment, -changed.amount_minor)
        return True, changed

    def page(
        self, listing: ListFilter, after: Cursor | None, limit: int, caller: Account
    ) -> list[Transaction]:
        self._call("page")
        if not self._store.is_active(caller):
            return []

        def selected(t: Transaction) -> bool:
            return (
                t.user_id == listing.owner
                and listing.status in (None, t.status)
                and listing.type in (None, t.type)
                and listing.currency in (None, t.currency)
                and (listing.created_from is None or t.created_at >= listing.created_from)
                and (listing.created_to is None or t.created_at < listing.created_to)
                and (after is None or (t.created_at, t.id) < (after.created_at, after.id))
            )

        newest_first = sorted(
            filter(selected, self._rows()), key=lambda t: (t.created_at, t.id), reverse=True
        )
        return newest_first[:limit]

    def events(self, tx_id: UUID) -> list[Event]:
        self._call("events")
        return self._store.events_of(tx_id)
