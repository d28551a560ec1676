"""A real gRPC server playing WatchTransactions from a script, for exact tests of the client's watch()."""

from __future__ import annotations

import threading
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common.errors import DomainError, ResourceExhausted, Unavailable


@dataclass
class Connection:
    """What the server does with one watch: send these event ids, then end (or hold it open)."""

    events: list[str] = field(default_factory=list)
    code: grpc.StatusCode | None = grpc.StatusCode.UNAVAILABLE  # None: hold the stream open
    reason: str = ""
    resume_token: str = ""  # in the ending's ErrorInfo metadata
    retry_delay: float | None = None

    def status(self) -> grpc.Status:
        """The rich status the service would send (its own error classes build it)."""
        assert self.code is not None
        error: DomainError
        if self.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            error = ResourceExhausted("scripted", retry_after=self.retry_delay, reason=self.reason or None)
        elif self.code == grpc.StatusCode.UNAVAILABLE:
            error = Unavailable("scripted", retry_after=self.retry_delay, reason=self.reason or None)
        else:
            error = DomainError("scripted", reason=self.reason or None)
            error.code = self.code
        if self.resume_token:
            error.metadata["resume_token"] = self.resume_token
        return error.to_status("test")


class ScriptedWatch(transaction_pb2_grpc.TransactionServiceServicer):
    """Plays one `Connection` per call; after the script, holds every call open."""

    def __init__(self, script: list[Connection]):
        self.script = deque(script)
        self.requests: list[tuple[pb.WatchTransactionsRequest, dict[str, str]]] = []

    def WatchTransactions(self, request: Any, context: Any) -> Any:
        self.requests.append((request, {k: str(v) for k, v in context.invocation_metadata()}))
        step = self.script.popleft() if self.script else Connection(code=None)
        for event_id in step.events:
            yield pb.TransactionChange(event_id=event_id, resume_token=f"after-{event_id}")
        if step.code is None:
            ended = threading.Event()
            context.add_callback(ended.set)
            ended.wait(30)
            return
        context.abort_with_status(step.status())


class ScriptedServer:
    """The scripted servicer on a real port."""

    def __init__(self, script: list[Connection]):
        self.servicer = ScriptedWatch(script)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        transaction_pb2_grpc.add_TransactionServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0)
