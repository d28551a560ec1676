"""A change-stream watcher that rides through failovers: on an error it resumes with its last token.

SPEC §6: a watcher that resumes with its last resume token misses no committed change. Across a
failover the stream ends (`UNAVAILABLE`) and the positions it resumes from must still mean the same
on the promoted standby.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_client import AuthClient, UserLogin, open_channel
from tests.ha.services import OWN_CONNECTION


@dataclass
class Watcher:
    """Watches one user's transactions; `seen` maps transaction ids to when their first change came."""

    auth_address: str
    tx_address: str
    user: tuple[str, str]
    seen: dict[str, float] = field(default_factory=dict)
    ended_with: list[str] = field(default_factory=list)  # the status each stream ended with
    resumes: int = 0
    _token: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _stream: grpc.Future | None = None  # type: ignore[type-arg]
    _thread: threading.Thread | None = None

    def start(self) -> Watcher:
        with open_channel(self.auth_address, options=OWN_CONNECTION) as channel:
            access = AuthClient(channel, timeout=10).login(UserLogin(*self.user)).access_token()
        self._metadata = (("authorization", f"Bearer {access}"),)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.cancel()
        if self._thread is not None:
            self._thread.join(10)

    def _watch(self) -> None:
        with grpc.insecure_channel(self.tx_address, options=OWN_CONNECTION) as channel:
            stub = transaction_pb2_grpc.TransactionServiceStub(channel)
            while not self._stop.is_set():
                request = pb.WatchTransactionsRequest(resume_token=self._token)
                self._stream = stub.WatchTransactions(request, metadata=self._metadata)
                try:
                    for change in self._stream:
                        self.seen.setdefault(change.transaction.id, time.monotonic())
                        self._token = change.resume_token
                except grpc.RpcError as err:
                    self.ended_with.append(err.code().name)
                if not self._stop.is_set():
                    self.resumes += 1
                    time.sleep(0.2)
