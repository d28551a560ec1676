"""Use cases of the transaction service; each runs in exactly one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Engine

from payments_common.db import autocommit, unit_of_work
from payments_common.errors import Aborted, NotFound, Unauthenticated
from payments_common.tokens import Principal
from transaction_service import domain, policy
from transaction_service.domain import Event, NewTransaction, Status, Transaction
from transaction_service.pagination import Cursor, ListFilter, PageTokens
from transaction_service.repository import Account, TransactionRepository


def _require_active(repo: TransactionRepository, principal: Principal) -> None:
    """A token stops working once its user or service principal is disabled or deleted.

    The main queries already require an active caller (`active=`), so this extra look-up runs
    only when they found nothing, to tell a disabled caller from a missing row.
    """
    if not repo.account_active(_active(principal)):
        raise _inactive(principal)


def _active(principal: Principal) -> Account:
    """The account that must exist and be enabled for the call: the caller's own."""
    return Account(principal.kind, policy.caller_id(principal))


def _inactive(principal: Principal) -> Unauthenticated:
    if principal.kind == "service":
        return Unauthenticated(
            "the token's service principal is disabled or no longer exists", reason="PRINCIPAL_DISABLED"
        )
    return Unauthenticated("the token's user is disabled or no longer exists", reason="USER_DISABLED")


class Payments:
    """Creates, reads, lists and settles payment records on one database engine."""

    def __init__(self, engine: Engine, tokens: PageTokens):
        self._engine = engine
        self._tokens = tokens

    def create(self, principal: Principal, new: NewTransaction, timeout_ms: int) -> Transaction:
        """Record a PENDING payment or refund, or return the original on an idempotent retry."""
        owner = policy.account_owner(principal)
        if new.refund_of is None:  # one statement, which itself requires an active owner
            with autocommit(self._engine, timeout_ms) as session:
                repo = TransactionRepository(session)
                created = repo.insert(owner, new, principal.subject)
                return created or self._original(repo, principal, owner, new)
        with unit_of_work(self._engine, timeout_ms) as session:
            return self._create_refund(TransactionRepository(session), principal, owner, new)

    @staticmethod
    def _create_refund(
        repo: TransactionRepository, principal: Principal, owner: UUID, new: NewTransaction
    ) -> Transaction:
        # Lock the payment first: refunds of one payment queue here, so the
        # remaining amount they check is never stale. Look the key up under
        # the lock, so a concurrent retry finds the original, not "exceeds".
        assert new.refund_of is not None
        actor = principal.subject
        payment = repo.get(new.refund_of, owner, lock=True, active=Account("user", owner))
        if payment is None:
            _require_active(repo, principal)
        existing = repo.by_key(owner, new.idempotency_key)
        if existing is not None:
            return domain.replay(existing, new)
        if payment is None:
            raise NotFound(domain.NOT_FOUND_MESSAGE)
        domain.check_refund(payment, new)
        created = repo.insert(owner, new, actor)
        if created is None:
            return Payments._original(repo, principal, owner, new)
        repo.add_refunded(payment.id, new.amount_minor)
        return created

    @staticmethod
    def _original(
        repo: TransactionRepository, principal: Principal, owner: UUID, new: NewTransaction
    ) -> Transaction:
        """After an insert that created nothing: the key's original row, or why there is none."""
        existing = repo.by_key(owner, new.idempotency_key)
        if existing is not None:
            return domain.replay(existing, new)
        if not repo.account_active(Account("user", owner)):
            raise _inactive(principal)  # disabled while this request was under way
        raise Aborted(
            "a concurrent request with this idempotency key did not finish; retry",
            reason="CONCURRENT_REQUEST",
        )

    def get(self, principal: Principal, tx_id: UUID, timeout_ms: int) -> Transaction:
        """One transaction the caller may see."""
        with autocommit(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            tx = repo.get(tx_id, policy.owner_scope(principal), active=_active(principal))
            if tx is None:
                _require_active(repo, principal)
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
        """Move a transaction along the status machine; one of N racers wins.

        The common case, a PENDING transaction settled or cancelled, is one compare-and-set
        statement. When it matches nothing, the row is read under a lock to give the exact answer
        (a repeat of the current status is OK, then ETAG_MISMATCH, INVALID_STATUS_TRANSITION or
        NOT_FOUND), exactly as if the compare-and-set had not been tried.
        """
        policy.authorize_target(principal, target)
        owner, active = policy.owner_scope(principal), _active(principal)
        if target in domain.FINAL:
            with autocommit(self._engine, timeout_ms) as session:
                changed = TransactionRepository(session).settle_pending(
                    tx_id,
                    target,
                    owner=owner,
                    active=active,
                    etag=etag,
                    actor=principal.subject,
                    reason=reason,
                )
            if changed is not None:
                return changed
        with unit_of_work(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            tx = repo.get(tx_id, owner, lock=True, active=active)
            if tx is None:
                _require_active(repo, principal)
                raise NotFound(domain.NOT_FOUND_MESSAGE)
            if not domain.is_change(tx, target, etag):
                return tx
            # PENDING at this version, and locked: the compare-and-set cannot miss now
            changed = repo.settle_pending(
                tx.id,
                target,
                owner=None,
                active=None,
                etag=tx.version,
                actor=principal.subject,
                reason=reason,
            )
            assert changed is not None, "a locked PENDING row changed under its lock"
            return changed

    def events(self, principal: Principal, tx_id: UUID, timeout_ms: int) -> Sequence[Event]:
        """The audit trail of a transaction the caller may see."""
        with autocommit(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            if repo.get(tx_id, policy.owner_scope(principal), active=_active(principal)) is None:
                _require_active(repo, principal)
                raise NotFound(domain.NOT_FOUND_MESSAGE)
            return repo.events(tx_id)

    def list(
        self, principal: Principal, listing: ListFilter, page_token: str, size: int, timeout_ms: int
    ) -> tuple[list[Transaction], str]:
        """One page, newest first, and the token of the next page ("" when it was the last)."""
        cursor = self._tokens.read(page_token, principal.subject, listing) if page_token else None
        with autocommit(self._engine, timeout_ms) as session:
            repo = TransactionRepository(session)
            rows = repo.page(listing, cursor, size + 1, active=_active(principal))
            if not rows:
                _require_active(repo, principal)
        if len(rows) <= size:
            return rows, ""
        return rows[:size], self.token_after(principal, listing, rows[size - 1])

    def token_after(self, principal: Principal, listing: ListFilter, last: Transaction) -> str:
        """The page token of the rows after `last` (also for a page cut short by its size in bytes)."""
        return self._tokens.issue(Cursor(last.created_at, last.id), principal.subject, listing)
