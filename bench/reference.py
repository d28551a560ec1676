"""The lean reference: `python -m bench.reference PORT` serves the benchmarked TransactionService calls.

Get, Create, List and UpdateTransactionStatus on `grpc.aio` and uvloop (the services' runtime)
with no framework: the bearer JWT is verified with PyJWT once per distinct token against the
auth service's JWK set (fetched once at start, `AUTH_SERVICE_ADDR`) and then remembered until it
expires; each call runs one statement of `transaction_service.sql`, prepared once per connection
(`bench.refdb`), and replies with the messages the service sends. Nothing else of the services is
imported. `DATABASE_URL` and `DATABASE_ROLE` are those of the transaction service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import struct
import sys
import uuid
from datetime import datetime
from typing import NoReturn, cast

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import refdb, reftokens
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc

SERVICE_NAME = "payments.transaction.v1.TransactionService"
SETTLEMENTS = frozenset({"COMPLETED", "FAILED"})
SOURCES = ["PENDING"]  # the only status a change may start from
RELEASING = ["CANCELLED", "FAILED"]  # a refund in these gives its amount back
DEFAULT_PAGE, MAX_PAGE = 50, 500
CALLER = {"caller_user", "caller_service", "caller_claims"}  # reftokens.Caller.active()
# the parameters each handler gives its statement (checked against the statements at start)
GIVES = {
    refdb.GET: {"id", "owner", *CALLER},
    refdb.CREATE: {"owner", "type", "amount_minor", "currency", "description", "metadata", "idempotency_key"}
    | {"request_fingerprint", "refund_of", "processor", "payment_method", "actor"},
    refdb.LIST: {"owner", "limit", *CALLER},
    refdb.CHANGE: {"id", "owner", "target", "from_statuses", "etag", "actor", "reason", "releasing", *CALLER},
}
Context = grpc.aio.ServicerContext[object, object]


def fingerprint(kind: str, request: pb.CreateTransactionRequest, metadata: dict[str, str]) -> bytes:
    """SHA-256 of the canonical request (everything but the key), as the service stores it."""
    canonical = [
        kind,
        request.amount_minor,
        request.currency,
        request.description,
        sorted(metadata.items()),
        "",
    ]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).digest()


class Reference(transaction_pb2_grpc.TransactionServiceServicer):
    """The four benchmarked calls, each one prepared statement."""

    def __init__(self, storage: refdb.Storage, tokens: reftokens.Tokens, page_key: bytes) -> None:
        self._db, self._tokens, self._page_key = storage, tokens, page_key

    async def _caller(self, context: Context) -> reftokens.Caller:
        caller = self._tokens.caller(context.invocation_metadata())
        if caller is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "access token is not valid")
        return caller

    @staticmethod
    async def _invalid(context: Context, field: str) -> NoReturn:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid request: {field}")

    async def GetTransaction(self, request: pb.GetTransactionRequest, context: Context) -> object:
        caller = await self._caller(context)
        try:
            tx_id = str(uuid.UUID(request.id))
        except ValueError:
            await self._invalid(context, "id")
        rows = await self._db.rows(refdb.GET, id=tx_id, **caller.visible())
        if not rows:
            await context.abort(grpc.StatusCode.NOT_FOUND, "transaction not found")
        return pb.GetTransactionResponse(transaction=refdb.transaction(rows[0]))

    async def CreateTransaction(self, request: pb.CreateTransactionRequest, context: Context) -> object:
        caller = await self._caller(context)
        kind = "PAYMENT" if request.type == pb.TRANSACTION_TYPE_PAYMENT else ""
        if caller.user is None or not kind or request.refund_of:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the reference creates users' payments only")
        if request.amount_minor <= 0 or len(request.currency) != 3 or not request.currency.isupper():
            await self._invalid(context, "amount_minor or currency")
        if not request.idempotency_key:
            await self._invalid(context, "idempotency_key")
        metadata = dict(request.metadata)
        rows = await self._db.rows(
            refdb.CREATE,
            owner=caller.user,
            type=kind,
            amount_minor=request.amount_minor,
            currency=request.currency,
            description=request.description,
            metadata=json.dumps(metadata),
            idempotency_key=request.idempotency_key,
            request_fingerprint=fingerprint(kind, request, metadata),
            refund_of=None,
            processor=None,
            payment_method=None,
            actor=caller.subject,
        )
        if not rows:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "the reference does not replay a taken key")
        return pb.CreateTransactionResponse(transaction=refdb.transaction(rows[0]))

    async def ListTransactions(self, request: pb.ListTransactionsRequest, context: Context) -> object:
        caller = await self._caller(context)
        if request.page_token or request.user_id or request.status or request.type or request.currency:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the reference lists first pages only")
        size = request.page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            await self._invalid(context, "page_size")
        rows = await self._db.rows(refdb.LIST, owner=caller.subject, limit=size + 1, **caller.active())
        token = self._page_token(caller, rows[size - 1]) if len(rows) > size else ""
        return pb.ListTransactionsResponse(
            transactions=[refdb.transaction(row) for row in rows[:size]], next_page_token=token
        )

    def _page_token(self, caller: reftokens.Caller, last: refdb.Row) -> str:
        """(created_at, id) of the last row, bound to the caller by an HMAC."""
        created_at = cast(datetime, last[refdb.position("created_at")])
        tx_id = uuid.UUID(str(last[refdb.position("id")]))
        body = struct.pack(">Bq16s", 1, refdb.micros(created_at), tx_id.bytes)
        mac = hmac.new(self._page_key, body + caller.subject.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()

    async def UpdateTransactionStatus(
        self, request: pb.UpdateTransactionStatusRequest, context: Context
    ) -> object:
        caller = await self._caller(context)
        target = refdb.STATUS_FROM_WIRE.get(request.status)
        if target is None or target == "PENDING":
            await self._invalid(context, "status")
        if target in SETTLEMENTS and not caller.settler:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"setting {target} needs {reftokens.SETTLE_SCOPE}"
            )
        try:
            tx_id, etag = str(uuid.UUID(request.id)), int(request.etag) if request.etag else None
        except ValueError:
            await self._invalid(context, "id or etag")
        rows = await self._db.rows(
            refdb.CHANGE,
            id=tx_id,
            target=target,
            from_statuses=SOURCES,
            etag=etag,
            actor=caller.subject,
            reason=request.reason,
            releasing=RELEASING,
            **caller.visible(),
        )
        if not rows:
            await context.abort(grpc.StatusCode.NOT_FOUND, "transaction not found")
        changed, reply = rows[0][0], refdb.transaction(rows[0], offset=1)
        if not changed and reply.status != refdb.STATUS_TO_WIRE[target]:
            code = grpc.StatusCode.ABORTED if etag is not None else grpc.StatusCode.FAILED_PRECONDITION
            await context.abort(code, "the transaction cannot change to that status")
        return pb.UpdateTransactionStatusResponse(transaction=reply)


class Healthy(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # an untyped generated base
    """SERVING from the start: the server starts once its keys and connections are ready."""

    async def Check(self, request: object, context: Context) -> object:
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def fetch_jwks(address: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=10)
    return cast(str, reply.jwks_json)


async def serve(port: int) -> None:
    """Serve until SIGTERM or SIGINT, then drain for up to 5 s."""
    for statement, given in GIVES.items():
        statement.require(given)
    env = os.environ
    tokens = reftokens.Tokens(
        await fetch_jwks(env.get("AUTH_SERVICE_ADDR", "localhost:50051")),
        env.get("TOKEN_ISSUER", "payments-auth"),
        env.get("TOKEN_AUDIENCE", "payments"),
    )
    storage = refdb.Storage(
        env["DATABASE_URL"], env.get("DATABASE_ROLE"), int(env.get("REFERENCE_DB_THREADS", "8"))
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])  # as the services
    transaction_pb2_grpc.add_TransactionServiceServicer_to_server(
        Reference(storage, tokens, secrets.token_bytes(32)), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(Healthy(), server)
    server.add_insecure_port(f"{env.get('GRPC_HOST', '127.0.0.1')}:{port}")
    await server.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(5)
    storage.close()


def main() -> None:
    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
