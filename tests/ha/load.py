"""A create load as an internal caller makes it: payments_client, idempotency keys, its retries.

Each writer is a logged-in client on connections of its own (so the writers spread over the
service's workers) that records payments one after another. Every attempt that leaves a client
is recorded with its status code and times; a create the client gave up on (its overall
deadline) is tried again by the writer with the same key, as an application would, until it is
acknowledged. What the writers were told is then checked against what the database holds.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_client import AuthClient, PaymentsClient, PaymentsError, RetryPolicy, UserLogin, open_channel
from tests.ha.services import OWN_CONNECTION

if TYPE_CHECKING:
    _Interceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Interceptor = grpc.UnaryUnaryClientInterceptor

CODE = grpc.StatusCode
TRANSIENT = (CODE.UNAVAILABLE, CODE.DEADLINE_EXCEEDED)
# the client's own retries: 10 s per create; the writer tries a create it gave up on again
POLICY = RetryPolicy(max_attempts=10, initial_backoff_seconds=0.05, max_backoff_seconds=1.0)
CLIENT_TIMEOUT_SECONDS = 10.0
KEY_DEADLINE_SECONDS = 90.0


@dataclass(frozen=True)
class Attempt:
    method: str
    code: grpc.StatusCode
    started: float
    ended: float


@dataclass
class AttemptLog(_Interceptor):
    """Records every attempt (the client's retries included) with its final status code."""

    attempts: list[Attempt] = field(default_factory=list)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.monotonic()
        outcome = continuation(details, request)
        code = outcome.code()  # waits for the attempt to end
        self.attempts.append(Attempt(details.method.rsplit("/", 1)[-1], code, started, time.monotonic()))
        return outcome


@dataclass
class Writers:
    """`count` writer threads over the users' accounts; `start`, then `stop` when done."""

    auth_address: str
    tx_address: str
    users: list[tuple[str, str]]
    count: int = 8
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    log: AttemptLog = field(default_factory=AttemptLog)
    issued: list[str] = field(default_factory=list)
    acked: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (id, when)
    gave_up: list[str] = field(default_factory=list)
    final_errors: list[grpc.StatusCode] = field(default_factory=list)  # what the client raised
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Writers:
        clients = [self._client(self.users[i % len(self.users)]) for i in range(self.count)]
        for index, client in enumerate(clients):
            thread = threading.Thread(target=self._write, args=(index, client), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(KEY_DEADLINE_SECONDS + 15)
            assert not thread.is_alive(), "a writer did not finish its last create"

    def _client(self, user: tuple[str, str]) -> PaymentsClient:
        auth_channel = open_channel(self.auth_address, options=OWN_CONNECTION)
        tx_channel = open_channel(self.tx_address, options=OWN_CONNECTION)
        auth = AuthClient(auth_channel, timeout=CLIENT_TIMEOUT_SECONDS, policy=POLICY)
        tokens = auth.login(UserLogin(*user))
        return PaymentsClient(
            tx_channel,
            tokens,
            timeout=CLIENT_TIMEOUT_SECONDS,
            policy=POLICY,
            interceptors=[self.log],
            owned_channels=(auth_channel, tx_channel),
        )

    def _write(self, index: int, client: PaymentsClient) -> None:
        with client:
            sequence = 0
            while not self._stop.is_set():
                sequence += 1
                key = f"ha-{self.run}-{index}-{sequence}"
                self.issued.append(key)
                self._create(client, key, 100 + sequence % 1000)

    def _create(self, client: PaymentsClient, key: str, amount: int) -> None:
        deadline = time.monotonic() + KEY_DEADLINE_SECONDS
        while True:
            try:
                tx = client.create_payment(amount, "EUR", idempotency_key=key, description="ha load")
            except PaymentsError as err:
                self.final_errors.append(err.code())
                if err.code() not in TRANSIENT or time.monotonic() > deadline:
                    self.gave_up.append(key)
                    return
                time.sleep(0.1)
                continue
            self.acked[key] = (tx.id, time.monotonic())
            return

    def codes(self, since: float = 0.0) -> set[grpc.StatusCode]:
        """Every status code an attempt of a create that started after `since` ended with."""
        return {a.code for a in self.log.attempts if a.method == "CreateTransaction" and a.started >= since}

    def recovered_after(self, at: float) -> float | None:
        """Seconds from `at` to the end of the first successful create that started after it."""
        creates = [a for a in self.log.attempts if a.method == "CreateTransaction" and a.started > at]
        ends = [a.ended for a in creates if a.code == CODE.OK]
        return min(ends) - at if ends else None

    def in_flight_at(self, at: float) -> list[Attempt]:
        """Attempts that had started but not ended at `at` (their answers came from the failover)."""
        return [a for a in self.log.attempts if a.started <= at <= a.ended]


@dataclass
class HealthWatch:
    """Polls a server's health entry every 0.1 s on its own connection: (time, status name)."""

    address: str
    service: str
    seen: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HealthWatch:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _poll(self) -> None:
        with grpc.insecure_channel(self.address, options=OWN_CONNECTION) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=self.service)
            while not self._stop.wait(0.1):
                try:
                    answer = stub.Check(request, timeout=1).status
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer)
                except grpc.RpcError as err:
                    status = err.code().name
                self.seen.append((time.monotonic(), status))

    def first(self, status: str, after: float) -> float | None:
        """When `status` was first seen after `after`."""
        return next((t for t, s in self.seen if t > after and s == status), None)
