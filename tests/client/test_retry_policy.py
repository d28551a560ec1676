"""What the retry policy decides: backoff, the server's retry delay, one deadline, bounded attempts.

Against a scripted server: the server's retry delay is honoured and the idempotency key reused,
a conflict on create is retried but a stale etag is not, RESOURCE_EXHAUSTED only with a delay,
attempts are bounded and a delay beyond the deadline fails at once; then the policy's table of
codes and its capped, jittered backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import pytest

import payments_client as pc
from payments_client.errors import StatusDetails
from payments_client.retry import is_retryable
from tests.client.retrying import PATIENT, Code
from tests.client.scripted import Failure, ScriptedServer, start_scripted
from tests.helpers import Caller


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = start_scripted()
    yield server
    server.server.stop(0)


def test_the_server_retry_delay_is_honoured_and_the_key_reused(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    scripted.servicer.script = [Failure(Code.UNAVAILABLE, retry_delay=0.5)]
    client = make_client(alice, tx=scripted.address, policy=PATIENT, timeout=5.0)
    client.create_payment(100, "EUR")
    first, second = scripted.servicer.received
    assert second.at - first.at >= 0.5
    assert first.request.idempotency_key == second.request.idempotency_key
    assert first.time_remaining is not None and second.time_remaining is not None
    # one deadline for all attempts: the second had 0.5 s less (a loaded machine may take a while
    # to send the first; the server's reading of a 5 s deadline may exceed it by a few ms)
    assert 2.0 < first.time_remaining <= 5.05 and second.time_remaining < first.time_remaining - 0.4


def test_a_conflict_on_create_is_retried_but_a_stale_etag_is_not(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    client = make_client(alice, tx=scripted.address, policy=PATIENT)
    scripted.servicer.script = [Failure(Code.ABORTED, "CONCURRENT_UPDATE")]
    client.create_payment(100, "EUR")
    assert len(scripted.servicer.received) == 2
    scripted.servicer.script = [Failure(Code.ABORTED, "ETAG_MISMATCH")]
    with pytest.raises(pc.PaymentsError) as caught:
        client.update_status("tx-1", "CANCELLED", etag="stale")
    assert caught.value.reason == "ETAG_MISMATCH" and caught.value.attempts == 1


def test_resource_exhausted_is_retried_only_when_the_server_says_when(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    client = make_client(alice, tx=scripted.address, policy=PATIENT)
    scripted.servicer.script = [Failure(Code.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE")]
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.attempts == 1
    scripted.servicer.script = [Failure(Code.RESOURCE_EXHAUSTED, "THROTTLED", retry_delay=0.1)]
    client.create_payment(100, "EUR")
    assert len(scripted.servicer.received) == 3


def test_attempts_are_bounded(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    policy = pc.RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01)
    client = make_client(alice, tx=scripted.address, policy=policy)
    scripted.servicer.script = [Failure(Code.UNAVAILABLE)] * 10
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.attempts == len(scripted.servicer.received) == 3


def test_a_retry_delay_beyond_the_deadline_fails_at_once_instead_of_sleeping(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    client = make_client(alice, tx=scripted.address, policy=PATIENT, timeout=2.0)
    scripted.servicer.script = [Failure(Code.UNAVAILABLE, retry_delay=30.0)]
    started = time.monotonic()
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.status.retry_delay == 30.0 and time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("code", "reason", "delay", "idempotent", "expected"),
    [
        (Code.UNAVAILABLE, "", None, True, True),
        (Code.UNAVAILABLE, "", None, False, False),
        (Code.DEADLINE_EXCEEDED, "", None, True, True),
        (Code.ABORTED, "CONCURRENT_UPDATE", None, True, True),
        (Code.ABORTED, "ETAG_MISMATCH", None, True, False),
        (Code.RESOURCE_EXHAUSTED, "", 1.0, True, True),
        (Code.RESOURCE_EXHAUSTED, "", None, True, False),
        (Code.UNAUTHENTICATED, "", None, True, False),  # handled by re-authenticating, not here
        (Code.INVALID_ARGUMENT, "", None, True, False),
        (Code.ALREADY_EXISTS, "", None, True, False),
        (Code.FAILED_PRECONDITION, "", None, True, False),
        (Code.PERMISSION_DENIED, "", None, True, False),
        (Code.NOT_FOUND, "", None, True, False),
        (Code.INTERNAL, "", None, True, False),
        (Code.UNKNOWN, "", None, True, False),
    ],
)
def test_the_retry_policy_table(
    code: grpc.StatusCode, reason: str, delay: float | None, idempotent: bool, expected: bool
) -> None:
    details = StatusDetails(code, "", reason=reason, retry_delay=delay)
    assert is_retryable(details, idempotent=idempotent) is expected


def test_backoff_grows_with_jitter_and_stays_capped() -> None:
    policy = pc.RetryPolicy(initial_backoff_seconds=0.1, max_backoff_seconds=1.0)
    for failed in range(1, 10):
        cap = min(1.0, 0.1 * 2 ** (failed - 1))
        assert all(cap / 2 <= policy.backoff(failed) <= cap for _ in range(50))
