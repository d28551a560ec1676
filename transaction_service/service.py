"""Use cases of the transaction service; each runs in exactly one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Engine

from payments_common.db import unit_of_work
from payments_common.errors import Aborted, NotFound, PermissionDenied
from payments_common.tokens import Principal
from transaction_service import domain, policy
from transaction_service.domain import Event, NewTransaction, Status, Transaction
from transaction_service.pagination import Cursor, ListFilter, PageTokens
from transaction_service.repository import TransactionRepository


class Payments:
    """Creates, reads, lists and settles payment records on one database engine."""

    def __init__(self, engine: Engine, tokens: PageTokens):
        self._engine = engine
        self._tokens = tokens

    def create(self, principal: Principal, new: NewTransaction, timeout_ms: int) -> Transaction:
        """Record a PENDING payment or refund, or return the original on an idempotent retry."""
        owner = policy.account_owner(principal)
        with unit_of_work(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            if new.refund_of is None:
                created = repo.insert(owner, new, principal.subject)
                return created or self._original(repo, owner, new)
            return self._create_refund(repo, owner, new, principal.subject)

    @staticmethod
    def _create_refund(
        repo: TransactionRepository, owner: UUID, new: NewTransaction, actor: str
    ) -> Transaction:
        # Lock the payment first: refunds of one payment queue here, so the
        # remaining amount they check is never stale. Look the key up under
        # the lock, so a concurrent retry finds the original, not "exceeds".
        assert new.refund_of is not None
        payment = repo.get(new.refund_of, owner, lock=True)
        existing = repo.by_key(owner, new.idempotency_key)
        if existing is not None:
            return domain.replay(existing, new)
        if payment is None:
            raise NotFound(domain.NOT_FOUND_MESSAGE)
        domain.check_refund(payment, new)
        created = repo.insert(owner, new, actor)
        if created is None:
            return Payments._original(repo, owner, new)
        repo.add_refunded(payment.id, new.amount_minor)
        return created

    @staticmethod
    def _original(repo: TransactionRepository, owner: UUID, new: NewTransaction) -> Transaction:
        """After an insert that created nothing: the key's original row, or why there is none."""
        existing = repo.by_key(owner, new.idempotency_key)
        if existing is not None:
            return domain.replay(existing, new)
        if not repo.account_active(owner):
            raise PermissionDenied("the account is unknown or disabled", reason="ACCOUNT_INACTIVE")
        raise Aborted(
            "a concurrent request with this idempotency key did not finish; retry",
            reason="CONCURRENT_REQUEST",
        )

    def get(self, principal: Principal, tx_id: UUID, timeout_ms: int) -> Transaction:
        """One transaction the caller may see."""
        with unit_of_work(self._engine, timeout_ms) as session:
            tx = TransactionRepository(session).get(tx_id, policy.owner_scope(principal))
        if tx is None:
            raise NotFound(domain.NOT_FOUND_MESSAGE)
        return tx

    def update_status(
        self,
        principal: Principal,
        tx_id: UUID,
        target: Status,
        etag: int | None,
        reason: str,
        timeout_ms: int,
    ) -> Transaction:
        """Move a transaction along the status machine; the row lock makes one of N racers win."""
        policy.authorize_target(principal, target)
        with unit_of_work(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            tx = repo.get(tx_id, policy.owner_scope(principal), lock=True)
            if tx is None:
                raise NotFound(domain.NOT_FOUND_MESSAGE)
            if not domain.is_change(tx, target, etag):
                return tx
            updated = repo.set_status(tx, target, principal.subject, reason)
            if domain.releases_refund(tx, target) and tx.refund_of is not None:
                repo.add_refunded(tx.refund_of, -tx.amount_minor)
            return updated

    def events(self, principal: Principal, tx_id: UUID, timeout_ms: int) -> Sequence[Event]:
        """The audit trail of a transaction the caller may see."""
        with unit_of_work(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            if repo.get(tx_id, policy.owner_scope(principal)) is None:
                raise NotFound(domain.NOT_FOUND_MESSAGE)
            return repo.events(tx_id)

    def list(
        self, principal: Principal, listing: ListFilter, page_token: str, size: int, timeout_ms: int
    ) -> tuple[list[Transaction], str]:
        """One page, newest first, and the token of the next page ("" when it was the last)."""
        cursor = self._tokens.read(page_token, principal.subject, listing) if page_token else None
        with unit_of_work(self._engine, timeout_ms) as session:
            rows = TransactionRepository(session).page(listing, cursor, size + 1)
        if len(rows) <= size:
            return rows, ""
        last = rows[size - 1]
        return rows[:size], self._tokens.issue(Cursor(last.created_at, last.id), principal.subject, listing)
