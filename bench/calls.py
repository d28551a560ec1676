"""The call each load-generator worker repeats, per workload (one `grpc.aio` call in flight each)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable

import grpc

from bench.users import User
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as tx_pb2
from payments.transaction.v1 import transaction_pb2_grpc

ECHO_METHOD = "/bench.Echo/Echo"
ECHO_PAYLOAD = b"x" * 96  # about the size of a small create request
CALL_TIMEOUT = 10.0
WORKLOADS = ("echo", "login", "create", "get", "list", "update")

Call = Callable[[], Awaitable[object]]


class PoolExhausted(RuntimeError):
    """The update workload ran out of seeded PENDING transactions."""


def make_calls(
    workload: str, concurrency: int, users: list[User], channels: list[grpc.aio.Channel]
) -> list[Call]:
    """One call per worker: worker i uses channel i % C and user i % U."""
    calls: list[Call] = []
    for i in range(concurrency):
        user = users[i % len(users)] if users else User("", "", "", "")
        calls.append(call(workload, channels[i % len(channels)], user))
    return calls


def call(workload: str, channel: grpc.aio.Channel, user: User) -> Call:
    """The call of `workload` as `user` on `channel`."""
    if workload == "echo":
        echo = channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)
        return lambda: echo(ECHO_PAYLOAD, timeout=CALL_TIMEOUT)
    if workload == "login":
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        login = auth_pb2.LoginRequest(
            password=auth_pb2.PasswordCredentials(email=user.email, password=user.password)
        )
        return lambda: auth.Login(login, timeout=CALL_TIMEOUT)
    stub = transaction_pb2_grpc.TransactionServiceStub(channel)
    md = (("authorization", f"Bearer {user.token}"),)
    if workload == "create":

        def create() -> Awaitable[object]:
            request = tx_pb2.CreateTransactionRequest(
                type=tx_pb2.TRANSACTION_TYPE_PAYMENT,
                amount_minor=1250,
                currency="EUR",
                description="bench payment",
                metadata={"order": "bench"},
                idempotency_key=uuid.uuid4().hex,  # a fresh key: every call creates a row
            )
            return stub.CreateTransaction(request, metadata=md, timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]

        return create
    if workload == "get":
        ids = user.ids
        return lambda: stub.GetTransaction(
            tx_pb2.GetTransactionRequest(id=random.choice(ids)), metadata=md, timeout=CALL_TIMEOUT
        )
    if workload == "list":
        page = tx_pb2.ListTransactionsRequest(page_size=50)
        return lambda: stub.ListTransactions(page, metadata=md, timeout=CALL_TIMEOUT)
    if workload == "update":
        pending = user.pending  # shared by the workers of this user; each id used once

        def cancel() -> Awaitable[object]:
            if not pending:
                raise PoolExhausted("the pool of PENDING transactions is exhausted; seed more")
            request = tx_pb2.UpdateTransactionStatusRequest(
                id=pending.pop(), status=tx_pb2.TRANSACTION_STATUS_CANCELLED, reason="bench"
            )
            return stub.UpdateTransactionStatus(request, metadata=md, timeout=CALL_TIMEOUT)  # type: ignore[no-any-return]

        return cancel
    raise SystemExit(f"unknown workload {workload!r}")
