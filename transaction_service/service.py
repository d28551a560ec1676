"""Use cases of the transaction service; each runs in exactly one scope of the store."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from payments_common.errors import Aborted, FailedPrecondition, NotFound, Unauthenticated
from payments_common.tokens import Principal
from transaction_service import domain, policy
from transaction_service.domain import Event, NewTransaction, Status, Transaction
from transaction_service.pagination import Cursor, ListFilter, PageTokens
from transaction_service.repository import Account, Repository, Store


def caller_account(principal: Principal) -> Account:
    """The account that must exist, be enabled and still hold what the token claims: the caller's own."""
    claims = principal.roles & {"admin"} if principal.kind == "user" else principal.scopes
    return Account(principal.kind, policy.caller_id(principal), tuple(sorted(claims)))


def _not_found(repo: Repository, principal: Principal) -> Exception:
    """Why a main statement found nothing: the caller was disabled, or the row is not visible.

    The main statements already require an active caller, so this look-up runs only when they
    found nothing, to tell a disabled caller from a missing row.
    """
    return (
        NotFound(domain.NOT_FOUND_MESSAGE)
        if repo.caller_active(caller_account(principal))
        else inactive_error(principal)
    )


def inactive_error(principal: Principal) -> Unauthenticated:
    """A token stops working once its user or service principal is disabled or deleted."""
    if principal.kind == "service":
        return Unauthenticated(
            "the token's service principal is disabled, no longer exists or lost a scope the token claims",
            reason="PRINCIPAL_DISABLED",
        )
    return Unauthenticated(
        "the token's user is disabled, no longer exists or lost a role the token claims; log in again",
        reason="USER_DISABLED",
    )


class Payments:
    """Creates, reads, lists and changes payment records."""

    def __init__(self, store: Store, tokens: PageTokens, processor: str | None = None):
        self._store = store
        self._tokens = tokens
        self._processor = processor  # the processor that charges payments with a payment method

    def create(self, principal: Principal, new: NewTransaction, timeout_ms: int) -> Transaction:
        """Record a PENDING payment or refund, or return the original on an idempotent retry.

        A payment with a payment method, and a refund of a payment the processor charged, are
        queued for the processor in the same statement.
        """
        owner = policy.account_owner(principal)
        if new.refund_of is None:  # one statement, which itself requires an active owner
            if new.payment_method is not None and self._processor is None:
                raise FailedPrecondition(
                    "this deployment has no payment processor (PAYMENT_PROCESSOR is unset); "
                    "create the payment without a payment_method",
                    reason="PROCESSOR_NOT_CONFIGURED",
                )
            processor = self._processor if new.payment_method is not None else None
            with self._store.statement(timeout_ms) as repo:
                created = repo.insert(owner, new, principal.subject, processor)
                return created or self._original(repo, principal, owner, new)
        with self._store.transaction(timeout_ms) as repo:
            return self._create_refund(repo, principal, owner, new)

    def _create_refund(
        self, repo: Repository, principal: Principal, owner: UUID, new: NewTransaction
    ) -> Transaction:
        # Lock the payment first: refunds of one payment queue here, so the remaining amount they
        # check is never stale. Look the key up under the lock, so a concurrent retry finds the
        # original, not "exceeds".
        assert new.refund_of is not None
        payment = repo.lock_payment(new.refund_of, owner, caller_account(principal))
        if payment is None and not repo.caller_active(caller_account(principal)):
            raise inactive_error(principal)
        existing = repo.by_key(owner, new.idempotency_key)
        if existing is not None:
            return domain.replay(existing, new)
        if payment is None:
            raise NotFound(domain.NOT_FOUND_MESSAGE)
        domain.check_refund(payment, new)
        created = repo.insert(owner, new, principal.subject, payment.processor)
        if created is None:
            return self._original(repo, principal, owner, new)
        repo.add_refunded(payment.id, new.amount_minor)
        return created

    @staticmethod
    def _original(repo: Repository, principal: Principal, owner: UUID, new: NewTransaction) -> Transaction:
        """After an insert that created nothing: the key's original row, or why there is none."""
        # the insert also finds nothing for a disabled owner: that comes first, as on every path
        if not repo.caller_active(caller_account(principal)):
            raise inactive_error(principal)
        existing = repo.by_key(owner, new.idempotency_key)
        if existing is not None:
            return domain.replay(existing, new)
        raise Aborted(
            "a concurrent request with this idempotency key did not finish; retry",
            reason="CONCURRENT_REQUEST",
        )

    def get(self, principal: Principal, tx_id: UUID, timeout_ms: int) -> Transaction:
        """One transaction the caller may see."""
        with self._store.statement(timeout_ms) as repo:
            tx = repo.get(tx_id, policy.owner_scope(principal), caller_account(principal))
            if tx is None:
                raise _not_found(repo, principal)
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
        """Move a transaction along the status machine in one statement; one of N racers wins.

        The statement changes the row or returns it as it is; then the answer is exact: a repeat of
        the current status is OK, otherwise ETAG_MISMATCH or INVALID_STATUS_TRANSITION.
        """
        policy.authorize_target(principal, target)
        with self._store.statement(timeout_ms) as repo:
            outcome = repo.change_status(
                tx_id,
                target,
                etag,
                owner=policy.owner_scope(principal),
                caller=caller_account(principal),
                actor=principal.subject,
                reason=reason,
            )
            if outcome is None:
                raise _not_found(repo, principal)
        changed, tx = outcome
        return tx if changed else domain.unchanged(tx, target, etag)

    def events(self, principal: Principal, tx_id: UUID, timeout_ms: int) -> Sequence[Event]:
        """The audit trail of a transaction the caller may see."""
        with self._store.statement(timeout_ms) as repo:
            if repo.get(tx_id, policy.owner_scope(principal), caller_account(principal)) is None:
                raise _not_found(repo, principal)
            return repo.events(tx_id)

    def list(
        self, principal: Principal, listing: ListFilter, page_token: str, size: int, timeout_ms: int
    ) -> tuple[list[Transaction], str]:
        """One page, newest first, and the token of the next page ("" when it was the last)."""
        cursor = self._tokens.read(page_token, principal.subject, listing) if page_token else None
        with self._store.statement(timeout_ms) as repo:
            rows = repo.page(listing, cursor, size + 1, caller_account(principal))
            if not rows and not repo.caller_active(caller_account(principal)):
                raise inactive_error(principal)
        if len(rows) <= size:
            return rows, ""
        return rows[:size], self.token_after(principal, listing, rows[size - 1])

    def token_after(self, principal: Principal, listing: ListFilter, last: Transaction) -> str:
        """The page token of the rows after `last` (also for a page cut short by its size in bytes)."""
        return self._tokens.issue(Cursor(last.created_at, last.id), principal.subject, listing)
