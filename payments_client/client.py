"""Typed helpers over TransactionService with tokens, deadlines and safe retries built in."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_client import retry
from payments_client.auth import AuthClient
from payments_client.credentials import TokenSource
from payments_client.metadata import Metadata, MetadataInterceptor, call_with_token
from payments_client.watch import WATCH_POLICY, ChangeStream

StatusName = Literal["PENDING", "COMPLETED", "FAILED", "CANCELLED"]
TypeName = Literal["PAYMENT", "REFUND"]


class PaymentsClient:
    """TransactionService for one principal.

    Every call carries the principal's current access token, one request id
    and a deadline of `timeout` seconds that also bounds its retries. Reads,
    status updates (the server makes a repeated status a no-op) and keyed
    creates are retried on transient failures; nothing else is.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        tokens: TokenSource,
        *,
        timeout: float = 10.0,
        policy: retry.RetryPolicy | None = None,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor[Any, Any]] = (),
        auth: AuthClient | None = None,
        owned_channels: Sequence[grpc.Channel] = (),
    ):
        self.auth = auth
        self._owned = list(owned_channels)
        intercepted = grpc.intercept_channel(channel, MetadataInterceptor(tokens, timeout), *interceptors)
        self._stub = transaction_pb2_grpc.TransactionServiceStub(intercepted)
        self.tokens = tokens
        self._timeout = timeout
        self._policy = policy or retry.RetryPolicy()

    def __repr__(self) -> str:
        return f"PaymentsClient({self.tokens!r}, timeout={self._timeout})"

    def __enter__(self) -> PaymentsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channels this client opened (see `connect`); the caller's own stay open."""
        for channel in self._owned:
            channel.close()
        self._owned.clear()

    def create_payment(
        self,
        amount_minor: int,
        currency: str,
        *,
        idempotency_key: str | None = None,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Transaction:
        """Record a PENDING payment exactly once, however many attempts it takes.

        The idempotency key is generated here once and reused by every retry;
        pass your own (an order id) to stay exactly-once across process restarts.
        """
        return self._create(
            pb.TRANSACTION_TYPE_PAYMENT, amount_minor, currency, "", idempotency_key, description, metadata
        )

    def create_refund(
        self,
        payment_id: str,
        amount_minor: int,
        currency: str,
        *,
        idempotency_key: str | None = None,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> pb.Transaction:
        """Record a PENDING refund of a COMPLETED payment, exactly once (see create_payment)."""
        return self._create(
            pb.TRANSACTION_TYPE_REFUND,
            amount_minor,
            currency,
            payment_id,
            idempotency_key,
            description,
            metadata,
        )

    def get_transaction(self, transaction_id: str) -> pb.Transaction:
        """One transaction of the caller (admins: anyone's); NOT_FOUND otherwise."""
        request = pb.GetTransactionRequest(id=transaction_id)
        reply = self._call(self._stub.GetTransaction, request, idempotent=True)
        tx: pb.Transaction = reply.transaction
        return tx

    def list_transactions(
        self,
        *,
        status: StatusName | None = None,
        type: TypeName | None = None,
        currency: str = "",
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        user_id: str = "",
        page_size: int = 0,
    ) -> Iterator[pb.Transaction]:
        """Every matching transaction, newest first, fetching pages lazily as you iterate."""
        request = pb.ListTransactionsRequest(
            page_size=page_size,
            status=f"TRANSACTION_STATUS_{status}" if status else None,
            type=f"TRANSACTION_TYPE_{type}" if type else None,
            currency=currency,
            created_from=created_from,
            created_to=created_to,
            user_id=user_id,
        )
        while True:
            reply = self._call(self._stub.ListTransactions, request, idempotent=True)
            yield from reply.transactions
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    def update_status(
        self, transaction_id: str, status: StatusName, *, etag: str = "", reason: str = ""
    ) -> pb.Transaction:
        """Move a PENDING transaction to a final status; repeating the current status is a no-op.

        With an `etag`, a reply lost after the change makes the retry fail with
        ABORTED/ETAG_MISMATCH although the status was set: re-read to see.
        """
        request = pb.UpdateTransactionStatusRequest(
            id=transaction_id, status=f"TRANSACTION_STATUS_{status}", etag=etag, reason=reason
        )
        reply = self._call(self._stub.UpdateTransactionStatus, request, idempotent=True)
        tx: pb.Transaction = reply.transaction
        return tx

    def watch(
        self, *, user_id: str = "", resume_token: str = "", policy: retry.RetryPolicy | None = None
    ) -> ChangeStream:
        """Every change the principal may see, as it is committed, for as long as you iterate.

        Returns once the server has started the watch: without a `resume_token`, every change
        committed after that is delivered. Reconnects by itself (with the token of the last change,
        backoff and jitter, a renewed access token) and drops repeats by `event_id`; `close()` it
        (or use it as a context manager) to stop. `user_id`: one user's changes (the
        `transactions:watch` scope or an admin); empty: the caller's own (a user) or every user's.
        Persist `stream.resume_token` after each change you handled to resume after a restart.
        """
        stream = ChangeStream(
            self._stub.WatchTransactions,
            self.tokens,
            user_id=user_id,
            resume_token=resume_token,
            policy=policy or WATCH_POLICY,
        )
        return stream.start()

    def list_events(self, transaction_id: str) -> list[pb.TransactionEvent]:
        """The audit trail of one transaction, oldest first."""
        request = pb.ListTransactionEventsRequest(transaction_id=transaction_id)
        reply = self._call(self._stub.ListTransactionEvents, request, idempotent=True)
        return list(reply.events)

    def _create(
        self,
        kind: pb.TransactionType,
        amount_minor: int,
        currency: str,
        refund_of: str,
        idempotency_key: str | None,
        description: str,
        metadata: Mapping[str, str] | None,
    ) -> pb.Transaction:
        request = pb.CreateTransactionRequest(
            type=kind,
            amount_minor=amount_minor,
            currency=currency,
            description=description,
            metadata=dict(metadata or {}),
            idempotency_key=idempotency_key or str(uuid.uuid4()),
            refund_of=refund_of,
        )
        # the same request object, key included, goes out on every attempt
        reply = self._call(self._stub.CreateTransaction, request, idempotent=True)
        tx: pb.Transaction = reply.transaction
        return tx

    def _call(self, method: Callable[..., Any], request: Any, *, idempotent: bool) -> Any:
        def attempt(md: Metadata, left: float) -> Any:
            return method(request, metadata=md, timeout=left)

        return call_with_token(
            self.tokens, attempt, idempotent=idempotent, timeout=self._timeout, policy=self._policy
        )
