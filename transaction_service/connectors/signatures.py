"""Timestamped HMAC webhook signatures (`t=<unix>,v1=<hex>`), the scheme of Stripe and the sandbox.

The signed text is `"<t>.<raw body>"`, so the timestamp cannot be changed without breaking the
signature, and a captured webhook replayed later falls outside the window. Several `v1` entries
are accepted (a processor sends one per active secret while it rotates them).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from transaction_service.connectors.base import WebhookProblem, WebhookRejected

DEFAULT_REPLAY_WINDOW_SECONDS = 300.0  # Stripe's default tolerance


def verify(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    window_seconds: float = DEFAULT_REPLAY_WINDOW_SECONDS,
    now: float | None = None,
) -> int:
    """The signed timestamp when `header` signs `body` with `secret` within the window; else raises.

    The MAC is compared before the timestamp, so an attacker learns nothing about the window from
    an unsigned request; both comparisons are constant-time or on public values only.
    """
    if not header:
        raise WebhookRejected(WebhookProblem.MISSING_SIGNATURE, "no signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookRejected(WebhookProblem.BAD_SIGNATURE, "signature header has no t= or v1=")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise WebhookRejected(WebhookProblem.BAD_SIGNATURE, "signature does not match the body")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > window_seconds:
        raise WebhookRejected(
            WebhookProblem.STALE_TIMESTAMP,
            f"signed {age:.0f} s ago, outside the {window_seconds:.0f} s window",
        )
    return timestamp
