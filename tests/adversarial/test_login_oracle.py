"""Login gives an attacker no oracle: unknown email and wrong password look and take the same.

tests/auth/test_login.py already compares one failure of each kind and covers
account throttling with recovery and peer throttling; this module measures
the timing over many samples and shows a throttled peer recovering.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common.server import RunningServer
from tests.adversarial.tools import record
from tests.helpers import details_of

SAMPLES = 200


def login(stub: Any, email: str, password: str, timeout: float = 10) -> Any:
    request = auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    return stub.Login(request, timeout=timeout)


def timed_failure(stub: Any, email: str, password: str) -> tuple[float, Any]:
    started = time.perf_counter()
    with pytest.raises(grpc.RpcError) as caught:
        login(stub, email, password)
    return time.perf_counter() - started, details_of(caught.value)


@pytest.mark.slow
def test_unknown_email_and_wrong_password_are_indistinguishable_in_code_message_and_median_time(
    start_auth: Callable[..., RunningServer], auth_stub: Any
) -> None:
    # a server of its own that never throttles, so that all 400 samples reach the password check
    server = start_auth(
        login_max_failures=1_000_000, login_account_max_failures=1_000_000, login_peer_max_failures=1_000_000
    )
    email, password = f"timing-{uuid.uuid4().hex[:8]}@example.com", "the real timing password"
    auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    unknown_email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(10):  # warm up the channel, the pool and the hasher
            timed_failure(stub, unknown_email, "warm up guess")
            timed_failure(stub, email, "warm up guess")
        unknown: list[float] = []
        wrong: list[float] = []
        seen: set[tuple[Any, ...]] = set()
        for i in range(SAMPLES):  # interleaved, so that drift in machine load hits both alike
            pairs = [(unknown, unknown_email), (wrong, email)]
            for samples, who in pairs if i % 2 else reversed(pairs):
                elapsed, details = timed_failure(stub, who, f"guess number {i}")
                samples.append(elapsed)
                seen.add((details.code, details.message, details.reason, tuple(details.violations)))
    median_unknown, median_wrong = statistics.median(unknown), statistics.median(wrong)
    gap = abs(median_unknown - median_wrong) / max(median_unknown, median_wrong)
    record(
        "login: unknown email vs wrong password",
        trials=SAMPLES,
        requests=2 * SAMPLES,
        median_unknown_ms=round(median_unknown * 1000, 2),
        median_wrong_ms=round(median_wrong * 1000, 2),
        gap_percent=round(gap * 100, 1),
        distinct_answers=len(seen),
        failures=int(gap >= 0.10) + int(len(seen) != 1),
    )
    assert seen == {(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials", "INVALID_CREDENTIALS", ())}
    assert gap < 0.10, (median_unknown, median_wrong)


def test_a_throttled_peer_is_refused_for_every_account_then_recovers_and_the_real_user_logs_in(
    start_auth: Callable[..., RunningServer], auth_stub: Any, clean_ipv6_peer: None
) -> None:
    # over IPv6 loopback, so that the peer counter is not the one the other tests share
    server = start_auth(login_peer_max_failures=3, login_lockout_seconds=1.0, grpc_host="[::1]")
    email, password = f"real-{uuid.uuid4().hex[:8]}@example.com", "the real user's password"
    auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    with grpc.insecure_channel(f"[::1]:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for i in range(3):
            assert timed_failure(stub, f"spray-{i}-{uuid.uuid4().hex[:6]}@example.com", "guess guess")[
                1
            ].code == (grpc.StatusCode.UNAUTHENTICATED)
        refused = timed_failure(stub, email, password)[1]  # the peer is blocked, even for the right password
        assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED")
        assert refused.retry_delay is not None and 0 < refused.retry_delay <= 1.0
        time.sleep(refused.retry_delay + 0.1)
        assert login(stub, email, password).tokens.access_token
    record("login: peer throttled then recovers", trials=1, requests=5, failures=0)
