"""The use cases over an `InMemoryStore`, with callers and requests built in one line each."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from uuid import UUID, uuid4

from payments_common.tokens import SCOPE_SETTLE, Principal
from tests.unit.memory import InMemoryStore
from transaction_service.domain import NewTransaction, Status, Transaction, TxType
from transaction_service.pagination import PageTokens
from transaction_service.service import Payments

TIMEOUT_MS = 1_000


def payment_request(amount: int = 1_000, currency: str = "EUR", key: str | None = None) -> NewTransaction:
    """A valid PAYMENT create request (a fresh idempotency key unless one is given)."""
    return NewTransaction(TxType.PAYMENT, amount, currency, "coffee", {"order": "1"}, key or uuid4().hex)


def refund_request(
    payment: Transaction | UUID, amount: int, key: str | None = None, currency: str = "EUR"
) -> NewTransaction:
    """A valid REFUND create request of `payment`."""
    payment_id = payment.id if isinstance(payment, Transaction) else payment
    return NewTransaction(TxType.REFUND, amount, currency, "", {}, key or uuid4().hex, refund_of=payment_id)


def owner_of(principal: Principal) -> UUID:
    return UUID(principal.subject)


class World:
    """One store, the `Payments` use cases over it, and callers registered in it."""

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()
        self.payments = Payments(self.store, PageTokens(b"k" * 32))

    def user(self) -> Principal:
        """An active user account."""
        return Principal(subject=str(self.store.add_account("user")), kind="user", roles=frozenset({"user"}))

    def admin(self) -> Principal:
        """An active user with the admin role (which holds every scope)."""
        subject = str(self.store.add_account("user"))
        return Principal(subject=subject, kind="user", roles=frozenset({"user", "admin"}))

    def settler(self) -> Principal:
        """An active service principal with the settle scope."""
        subject = str(self.store.add_account("service"))
        return Principal(subject=subject, kind="service", scopes=frozenset({SCOPE_SETTLE}))

    def disable(self, principal: Principal) -> None:
        self.store.disable(owner_of(principal))

    def create(self, principal: Principal, new: NewTransaction) -> Transaction:
        return self.payments.create(principal, new, TIMEOUT_MS)

    def set_status(
        self, principal: Principal, tx: Transaction | UUID, target: Status, etag: int | None = None
    ) -> Transaction:
        tx_id = tx.id if isinstance(tx, Transaction) else tx
        return self.payments.update_status(principal, tx_id, target, etag, "because", TIMEOUT_MS)

    def attempts(self, principal: Principal, tx_id: UUID) -> list[Callable[[], object]]:
        """Each use case that names one transaction: get it, list its events, cancel it."""
        return [
            partial(self.payments.get, principal, tx_id, TIMEOUT_MS),
            partial(self.payments.events, principal, tx_id, TIMEOUT_MS),
            partial(self.set_status, principal, tx_id, Status.CANCELLED),
        ]

    def completed_payment(
        self, principal: Principal, amount: int = 1_000, currency: str = "EUR"
    ) -> Transaction:
        """A COMPLETED payment of `principal`, committed earlier (not through the use cases)."""
        return self.store.seed(
            owner_of(principal), payment_request(amount, currency), status=Status.COMPLETED
        )

    def row(self, tx: Transaction) -> Transaction:
        """The committed state of `tx` now."""
        return self.store.rows[tx.id]

    def calls_from_now(self) -> list[str]:
        """Forget the calls so far; the returned list fills with the next ones."""
        self.store.calls.clear()
        return self.store.calls
