"""gRPC entry point: wire messages in, one use case on the database threads, wire messages out.

No SQL, no rules. Errors are raised as DomainError and mapped to status by the interceptors.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from uuid import UUID

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common.errors import DeadlineExceeded, InvalidArgument, Unavailable
from payments_common.interceptors import current_principal
from payments_common.server import Offload
from transaction_service import policy, validation, wire
from transaction_service.pagination import ListFilter
from transaction_service.service import Payments
from transaction_service.watch import Watches

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TransactionService"].full_name
PUBLIC_METHODS: frozenset[str] = frozenset()  # every call needs a verified access token
RESUME_TOKEN_HEADER = "x-resume-token"  # initial metadata of a watch: where it starts
Context = grpc.aio.ServicerContext


class TransactionServicer(transaction_pb2_grpc.TransactionServiceServicer):
    """Implements payments.transaction.v1.TransactionService."""

    def __init__(
        self,
        payments: Payments,
        offload: Offload,
        statement_timeout_ms: int,
        max_message_bytes: int = 1 << 20,
        *,
        watches: Watches | None = None,
    ):
        self._payments = payments
        self._watches = watches
        self._changes = wire.ChangeMessages()
        self._offload = offload
        self._max_timeout_ms = statement_timeout_ms
        # room for the page token and framing; a page never outgrows the send limit
        self._max_page_bytes = max(max_message_bytes - 1024, 1)

    def _budget_ms(self, context: Context[Any, Any]) -> int:
        """The caller's remaining time bounds each statement, so abandoned work stops in the database."""
        remaining = context.time_remaining()
        if remaining is None or remaining * 1000 >= self._max_timeout_ms:
            return self._max_timeout_ms
        if remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the work started")
        return max(int(remaining * 1000), 1)

    async def CreateTransaction(
        self,
        request: pb.CreateTransactionRequest,
        context: Context[pb.CreateTransactionRequest, pb.CreateTransactionResponse],
    ) -> pb.CreateTransactionResponse:
        new = validation.new_transaction(
            wire.tx_type(request.type),
            request.amount_minor,
            request.currency,
            request.description,
            request.metadata,
            request.idempotency_key,
            request.refund_of,
            request.payment_method,
        )
        tx = await self._offload(self._payments.create, current_principal(), new, self._budget_ms(context))
        return pb.CreateTransactionResponse(transaction=wire.transaction(tx))

    async def GetTransaction(
        self,
        request: pb.GetTransactionRequest,
        context: Context[pb.GetTransactionRequest, pb.GetTransactionResponse],
    ) -> pb.GetTransactionResponse:
        tx_id = validation.require_uuid("id", request.id)
        tx = await self._offload(self._payments.get, current_principal(), tx_id, self._budget_ms(context))
        return pb.GetTransactionResponse(transaction=wire.transaction(tx))

    async def ListTransactions(
        self,
        request: pb.ListTransactionsRequest,
        context: Context[pb.ListTransactionsRequest, pb.ListTransactionsResponse],
    ) -> pb.ListTransactionsResponse:
        principal = current_principal()
        size, requested_user, listing = self._list_query(request)
        listing = replace(listing, owner=policy.list_owner(principal, requested_user))
        rows, next_token = await self._offload(
            self._payments.list, principal, listing, request.page_token, size, self._budget_ms(context)
        )
        messages = [wire.transaction(tx) for tx in rows]
        reply = pb.ListTransactionsResponse(transactions=messages, next_page_token=next_token)
        if reply.ByteSize() <= self._max_page_bytes:
            return reply
        # page_size is a maximum: large rows end the page early, with a token
        used = 0
        for shown, message in enumerate(messages):
            used += message.ByteSize() + 8  # the repeated field's tag and length
            if shown and used > self._max_page_bytes:
                next_token = self._payments.token_after(principal, listing, rows[shown - 1])
                return pb.ListTransactionsResponse(transactions=messages[:shown], next_page_token=next_token)
        return reply  # the rows fit; the token uses the 1 KiB kept free for it

    @staticmethod
    def _list_query(request: pb.ListTransactionsRequest) -> tuple[int, UUID | None, ListFilter]:
        """Page size, the admin's user_id (if any) and the filter, with every bad field reported at once."""
        violations: list[tuple[str, str]] = []
        size = validation.page_size(violations, request.page_size)
        requested = validation.parse_uuid(violations, "user_id", request.user_id) if request.user_id else None
        start = wire.optional_time(violations, request, "created_from")
        end = wire.optional_time(violations, request, "created_to")
        validation.created_range(violations, start, end)
        listing = ListFilter(
            owner=UUID(int=0),  # set by the caller once authorised
            status=wire.status_filter(violations, request.status),
            type=wire.type_filter(violations, request.type),
            currency=validation.currency_filter(violations, request.currency),
            created_from=start,
            created_to=end,
        )
        if violations:
            raise InvalidArgument(violations)
        return size, requested, listing

    async def UpdateTransactionStatus(
        self,
        request: pb.UpdateTransactionStatusRequest,
        context: Context[pb.UpdateTransactionStatusRequest, pb.UpdateTransactionStatusResponse],
    ) -> pb.UpdateTransactionStatusResponse:
        tx_id, target, etag = validation.update_request(
            request.id, wire.status(request.status), request.etag, request.reason
        )
        tx = await self._offload(
            self._payments.update_status,
            current_principal(),
            tx_id,
            target,
            etag,
            request.reason,
            self._budget_ms(context),
        )
        return pb.UpdateTransactionStatusResponse(transaction=wire.transaction(tx))

    async def ListTransactionEvents(
        self,
        request: pb.ListTransactionEventsRequest,
        context: Context[pb.ListTransactionEventsRequest, pb.ListTransactionEventsResponse],
    ) -> pb.ListTransactionEventsResponse:
        tx_id = validation.require_uuid("transaction_id", request.transaction_id)
        found = await self._offload(
            self._payments.events, current_principal(), tx_id, self._budget_ms(context)
        )
        return pb.ListTransactionEventsResponse(events=[wire.event(ev) for ev in found])

    async def WatchTransactions(
        self,
        request: pb.WatchTransactionsRequest,
        context: Context[pb.WatchTransactionsRequest, pb.TransactionChange],
    ) -> AsyncIterator[pb.TransactionChange]:
        if self._watches is None:
            raise Unavailable("this server does not serve WatchTransactions", reason="WATCH_DISABLED")
        principal = current_principal()
        requested = validation.require_uuid("user_id", request.user_id) if request.user_id else None
        owner = policy.watch_owner(principal, requested)
        watch = self._watches.follow(principal, owner, request.resume_token, self._max_timeout_ms)
        async with contextlib.aclosing(watch) as changes:  # ended in this task, whatever ends the call
            async for change, resume_token in changes:
                if change is None:  # the watch is live: its start position, before any change arrives
                    await context.send_initial_metadata(((RESUME_TOKEN_HEADER, resume_token),))
                    continue
                yield self._changes(change, resume_token)
