"""`PaymentsClient.watch()`: the change stream as one endless iterator, across reconnects.

The server ends a watch now and then (its token expired, it drains for a deploy, it lost the
database); this iterator reconnects with the resume token of the last change it yielded (or the
newer one the server's ErrorInfo carried), so the caller sees every committed change. Between
attempts it backs off with jitter; on UNAUTHENTICATED it renews the token and reconnects at once.
A change can repeat only across a reconnect; repeats are dropped by `event_id` (the last
`remember` ids are kept). Errors that a reconnect cannot cure (PERMISSION_DENIED, a tampered or
expired resume token, ...) end the iteration as `PaymentsError`.

Persist `resume_token` after handling each change to resume across restarts of your process.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from payments.transaction.v1 import transaction_pb2 as pb
from payments_client.errors import PaymentsError, StatusDetails, status_details
from payments_client.metadata import AccessTokens
from payments_client.retry import RetryPolicy

Code = grpc.StatusCode
# what a reconnect cures; anything else is the caller's to fix
RECONNECT_CODES = frozenset({Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.ABORTED})
# patient by default: a watch outlives outages, and each attempt is one cheap call
WATCH_POLICY = RetryPolicy(max_attempts=0, initial_backoff_seconds=0.2, max_backoff_seconds=10.0)
RESUME_TOKEN_HEADER = "x-resume-token"  # initial metadata of a watch: the position it starts from
HEALTHY_SECONDS = 10.0  # a connection that lasted this long ended for a new reason: start counting afresh


class ChangeStream(Iterator[pb.TransactionChange]):
    """Every committed change the caller may see, in order per transaction, each once."""

    def __init__(
        self,
        open_call: Callable[..., Any],
        tokens: AccessTokens,
        *,
        user_id: str = "",
        resume_token: str = "",
        policy: RetryPolicy = WATCH_POLICY,
        remember: int = 10_000,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.resume_token = resume_token  # where the next connection resumes; persist it to survive restarts
        self.reconnects = 0
        self.repeats = 0  # changes dropped because their event_id was seen
        self._open_call = open_call
        self._tokens = tokens
        self._user_id = user_id
        self._policy = policy
        self._remember = remember
        self._sleep = sleep
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._request_id = uuid.uuid4().hex  # one per watch: its connections share it in the server logs
        self._call: Any = None
        self._used_token = ""
        self._failures = 0  # consecutive attempts that ended before a change arrived
        self._renewed = False
        self._connected_at = 0.0
        self._closed = threading.Event()

    def __iter__(self) -> ChangeStream:
        return self

    def __next__(self) -> pb.TransactionChange:
        while True:
            if self._closed.is_set():
                raise StopIteration
            if self._call is None:
                self._connect()
            try:
                change: pb.TransactionChange = next(self._call)
            except StopIteration:  # a server never ends a watch by itself; treat it as a drop
                self._call = None
                continue
            except grpc.RpcError as err:
                self._call = None
                self._failed(err)
                continue
            self._failures, self._renewed = 0, False
            self.resume_token = change.resume_token
            if change.event_id in self._seen:
                self.repeats += 1
                continue
            self._seen[change.event_id] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            return change

    def close(self) -> None:
        """Stop watching (from any thread): the iteration ends, the server's stream is cancelled."""
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self) -> ChangeStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> ChangeStream:
        """Connect now and wait until the server has started the watch (its x-resume-token header).

        A change committed after this returns is delivered; one committed before may not be (with
        no resume token). If this attempt fails, iterating retries it.
        """
        if self._call is None and not self._closed.is_set():
            self._connect()
        return self

    def _connect(self) -> None:
        self._used_token = self._tokens.access_token()
        metadata = (("authorization", f"Bearer {self._used_token}"), ("x-request-id", self._request_id))
        request = pb.WatchTransactionsRequest(resume_token=self.resume_token, user_id=self._user_id)
        call = self._call = self._open_call(request, metadata=metadata)
        self._connected_at = time.monotonic()
        if self._closed.is_set():  # closed while connecting
            call.cancel()
        # the server's start position: a resume point before any change (empty if the call failed)
        header = dict(call.initial_metadata() or ()).get(RESUME_TOKEN_HEADER)
        self.resume_token = str(header) if header else self.resume_token

    def _failed(self, err: grpc.RpcError) -> None:
        """Decide what an ended connection means: reconnect (after a pause), or give up."""
        details = status_details(err)
        if self._closed.is_set():
            raise StopIteration
        self.resume_token = details.metadata.get("resume_token") or self.resume_token
        if time.monotonic() - self._connected_at >= HEALTHY_SECONDS:  # e.g. an idle watch's token expired
            self._failures, self._renewed = 0, False
        self._failures += 1
        if details.code == Code.UNAUTHENTICATED and not self._renewed:
            self._renewed = True  # the token expired, or the server restarted with new keys: renew once
            self._tokens.invalidate(self._used_token)
            self.reconnects += 1
            return
        if not self._retryable(details):
            raise PaymentsError(details, self._failures, self._request_id) from err
        self._sleep(max(self._policy.backoff(self._failures), details.retry_delay or 0.0))
        self.reconnects += 1

    def _retryable(self, details: StatusDetails) -> bool:
        if 0 < self._policy.max_attempts <= self._failures:
            return False
        if details.code == Code.RESOURCE_EXHAUSTED:
            return details.retry_delay is not None  # the watcher limit says when to come back
        return details.code in RECONNECT_CODES
