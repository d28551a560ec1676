"""A WatchTransactions stream read on a thread of its own, and ways to make changes to watch."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.helpers import Caller, details_of

Metadata = Sequence[tuple[str, str]]


def stub_at(address: str, *, own_connection: bool = False) -> tuple[grpc.Channel, Any]:
    """A channel and a TransactionService stub on it.

    Channels to one address share a connection unless `own_connection`; a connection carries at
    most GRPC_MAX_CONCURRENT_STREAMS (100) calls at once, so many watches need several.
    """
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    channel = grpc.insecure_channel(address, options=options)
    return channel, transaction_pb2_grpc.TransactionServiceStub(channel)


class Watcher:
    """One stream: the changes that arrived, in order, and the error that ended it (if any)."""

    def __init__(self, stub: Any, md: Metadata, *, resume_token: str = "", user_id: str = ""):
        request = pb.WatchTransactionsRequest(resume_token=resume_token, user_id=user_id)
        self.changes: list[pb.TransactionChange] = []
        self.error: grpc.RpcError | None = None
        self.start_token = ""
        self._call = stub.WatchTransactions(request, metadata=tuple(md))
        self._changed = threading.Condition()
        self._live = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self.start_token = str(dict(self._call.initial_metadata() or ()).get("x-resume-token", ""))
            self._live.set()
            for change in self._call:
                with self._changed:
                    self.changes.append(change)
                    self._changed.notify_all()
        except grpc.RpcError as err:
            with self._changed:
                self.error = err
                self._changed.notify_all()
        finally:
            self._live.set()

    def live(self, timeout: float = 10.0) -> Watcher:
        """Wait until the server says the watch started (its x-resume-token header); fail otherwise."""
        assert self._live.wait(timeout), "the watch did not start"
        assert self.error is None, f"the watch failed: {self.error}"
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[pb.TransactionChange]:
        """The first `count` changes; fails if they do not arrive in time or the stream ends."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.changes) < count and self.error is None:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.changes)} of {count} changes after {timeout} s"
                self._changed.wait(left)
            assert len(self.changes) >= count, f"ended after {len(self.changes)} of {count}: {self.error}"
            return list(self.changes[:count])

    def ended(self, timeout: float = 10.0) -> grpc.RpcError:
        """The error the stream ended with; fails if it is still open after `timeout`."""
        self._thread.join(timeout)
        assert self.error is not None, f"the stream is still open after {timeout} s"
        return self.error

    @property
    def ending(self) -> Any:
        """The decoded status details of the ending (code, reason, metadata, retry delay)."""
        return details_of(self.ended())

    def stop(self) -> None:
        self._call.cancel()
        self._thread.join(5)


def payment(stub: Any, caller: Caller, amount_minor: int = 1250) -> Any:
    """A new PENDING EUR payment of `caller`."""
    request = pb.CreateTransactionRequest(
        type=pb.TRANSACTION_TYPE_PAYMENT,
        amount_minor=amount_minor,
        currency="EUR",
        idempotency_key=f"stream-{uuid.uuid4()}",
    )
    return stub.CreateTransaction(request, metadata=caller.md, timeout=10).transaction


def cancel(stub: Any, caller: Caller, tx_id: str) -> Any:
    """Cancel `tx_id` as its owner."""
    request = pb.UpdateTransactionStatusRequest(
        id=tx_id, status=pb.TRANSACTION_STATUS_CANCELLED, reason="test"
    )
    return stub.UpdateTransactionStatus(request, metadata=caller.md, timeout=10).transaction
