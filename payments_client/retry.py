"""When to try a call again, and how long to wait: the one place that decides.

A retry is only safe when a second delivery cannot do harm: reads, calls the
server makes idempotent (status updates, revocation, login), and creates that
carry an idempotency key generated once per logical call. Everything else is
tried once, because a lost reply does not mean the server did nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from payments_client.errors import PaymentsError, StatusDetails, status_details

T = TypeVar("T")
Code = grpc.StatusCode

# Reasons that say "the same request will fail again": the caller must re-read first.
PERMANENT_REASONS = frozenset({"ETAG_MISMATCH"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; the call's deadline bounds it too.

    The defaults keep trying for about as long as a database failover takes (10-11 s on the
    Patroni cluster of deploy/ha): 0.1 s doubling to 2 s, up to 10 attempts, so a call within its
    deadline (the client's 10 s by default) rides one out instead of failing after 0.7 s.
    """

    max_attempts: int = 10
    initial_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 2.0
    multiplier: float = 2.0

    def backoff(self, failed_attempts: int) -> float:
        """Delay before the next attempt: "equal jitter" spreads retries yet never waits ~0."""
        cap = min(
            self.max_backoff_seconds, self.initial_backoff_seconds * self.multiplier ** (failed_attempts - 1)
        )
        return cap / 2 + random.uniform(0, cap / 2)


def is_retryable(details: StatusDetails, *, idempotent: bool) -> bool:
    """True when trying the same request again can succeed and cannot do harm.

    UNAUTHENTICATED is not here: it is handled by re-authenticating once.
    """
    if not idempotent:
        return False
    if details.code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED):
        return True
    if details.code == Code.ABORTED:
        return details.reason not in PERMANENT_REASONS
    # the server says when retrying helps (throttling); without RetryInfo it will not
    return details.code == Code.RESOURCE_EXHAUSTED and details.retry_delay is not None


def call(
    attempt: Callable[[float], T],
    *,
    idempotent: bool,
    timeout: float,
    policy: RetryPolicy,
    reauthenticate: Callable[[], None] | None = None,
    request_id: str = "",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `attempt(remaining_seconds)` until it succeeds or the policy gives up.

    Every attempt gets the time left of one overall deadline, so retries never
    stretch a call beyond `timeout`. An UNAUTHENTICATED answer is rejected
    before the server does any work, so it is retried once for any call after
    `reauthenticate()` (a refresh or a new login).
    """
    deadline = clock() + timeout
    attempts, reauthenticated = 0, False
    while True:
        attempts += 1
        try:
            return attempt(max(deadline - clock(), 0.001))
        except PaymentsError:
            raise  # a login that failed for good while fetching a token: already retried there
        except grpc.RpcError as err:
            details, cause = status_details(err), err
        if details.code == Code.UNAUTHENTICATED and reauthenticate is not None and not reauthenticated:
            reauthenticated = True
            reauthenticate()
            continue
        delay = max(policy.backoff(attempts), details.retry_delay or 0.0)
        if (
            attempts >= policy.max_attempts
            or not is_retryable(details, idempotent=idempotent)
            or clock() + delay >= deadline
        ):
            raise PaymentsError(details, attempts, request_id) from cause
        sleep(delay)
