"""Test payment methods and what each makes the sandbox do, plus the API's error shape.

A refund behaves like the charge it refunds (a refund of a `pm_card_async` charge answers
"processing" and is resolved by webhook), so one table drives both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

# the stale failure that `pm_card_out_of_order` sends after the success: an earlier attempt's result
STALE_FAILURE_CODE = "processing_error"


class Webhooks(Enum):
    """Which events a result is announced with."""

    NONE = "none"
    ONCE = "once"
    TWICE = "twice"  # the same event (same id) delivered twice
    STALE_FAILURE = "stale_failure"  # the success, then an older failure event


@dataclass(frozen=True)
class Behaviour:
    """How the sandbox answers a test payment method."""

    status: str  # status in the synchronous answer: succeeded, failed or processing
    failure_code: str | None = None
    slow: bool = False  # answer after SANDBOX_SLOW_SECONDS
    hold: bool = False  # commit, then withhold the answer (a lost reply)
    webhooks: Webhooks = Webhooks.NONE


METHODS: dict[str, Behaviour] = {
    "pm_card_visa": Behaviour("succeeded"),
    "pm_card_declined": Behaviour("failed", "card_declined"),
    "pm_card_insufficient_funds": Behaviour("failed", "insufficient_funds"),
    "pm_card_slow": Behaviour("succeeded", slow=True),
    "pm_card_timeout": Behaviour("succeeded", hold=True),
    "pm_card_async": Behaviour("processing", webhooks=Webhooks.ONCE),
    "pm_card_webhook_twice": Behaviour("processing", webhooks=Webhooks.TWICE),
    "pm_card_out_of_order": Behaviour("processing", webhooks=Webhooks.STALE_FAILURE),
}


class ApiError(Exception):
    """An error answer: HTTP status plus Stripe-like `{"error": {type, code, message, param}}`."""

    def __init__(self, status: int, kind: str, code: str, message: str, param: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.body: dict[str, Any] = {"error": {"type": kind, "code": code, "message": message}}
        if param is not None:
            self.body["error"]["param"] = param

    def to_json(self) -> str:
        """The body sent to the client."""
        return json.dumps(self.body)


def invalid(param: str, message: str, code: str = "parameter_invalid") -> ApiError:
    """A bad request parameter (400)."""
    return ApiError(400, "invalid_request_error", code, f"{param}: {message}", param)


def missing_object(kind: str, reference: str) -> ApiError:
    """The answer to a lookup of something the sandbox never saw."""
    return ApiError(
        404, "invalid_request_error", "resource_missing", f"no {kind} with reference {reference!r}"
    )
