"""A real gRPC server playing TransactionService from a script of failures, for exact retry tests.

The shared server cannot be made to answer ABORTED or RESOURCE_EXHAUSTED with
RetryInfo on demand; this one can, over a real channel, with real status details.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc


@dataclass
class Failure:
    """One scripted error answer."""

    code: grpc.StatusCode
    reason: str = ""
    retry_delay: float | None = None

    def status(self) -> grpc.Status:
        """The rich status: ErrorInfo, plus RetryInfo when a delay is scripted."""
        details: list[Any] = [error_details_pb2.ErrorInfo(reason=self.reason, domain="test")]
        if self.retry_delay is not None:
            delay = duration_pb2.Duration()
            delay.FromTimedelta(timedelta(seconds=self.retry_delay))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        packed = []
        for detail in details:
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        proto = status_pb2.Status(code=self.code.value[0], message="scripted", details=packed)
        return rpc_status.to_status(proto)


@dataclass
class Received:
    """A request as the server got it, with when and how much time the caller gave it."""

    request: Any
    at: float
    time_remaining: float | None


class ScriptedTransactions(transaction_pb2_grpc.TransactionServiceServicer):
    """Answers each call with the next scripted failure, then succeeds."""

    def __init__(self) -> None:
        self.script: list[Failure] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def _next(self, request: Any, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.received.append(Received(request, time.monotonic(), context.time_remaining()))
            failure = self.script.pop(0) if self.script else None
        if failure is not None:
            context.abort_with_status(failure.status())

    def CreateTransaction(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next(request, context)
        return pb.CreateTransactionResponse(
            transaction=pb.Transaction(id="tx-1", idempotency_key=request.idempotency_key)
        )

    def UpdateTransactionStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next(request, context)
        return pb.UpdateTransactionStatusResponse(
            transaction=pb.Transaction(id=request.id, status=request.status)
        )


@dataclass
class ScriptedServer:
    """The running server and its servicer."""

    servicer: ScriptedTransactions
    address: str
    server: grpc.Server = field(repr=False)


def start_scripted() -> ScriptedServer:
    """Start on a free port of 127.0.0.1."""
    servicer = ScriptedTransactions()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    transaction_pb2_grpc.add_TransactionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return ScriptedServer(servicer, f"127.0.0.1:{port}", server)
