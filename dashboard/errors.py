"""A failed call to a service, decoded once from its google.rpc details and put into words.

People read the dashboard, so the ErrorInfo reason (REFUND_EXCEEDS_REMAINING, ETAG_MISMATCH, ...)
and the BadRequest field violations become sentences here; the service's own message is the
fallback for anything not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"

REASONS = {
    "REFUND_EXCEEDS_REMAINING": "The refund is more than what is left to refund on this payment.",
    "INVALID_STATUS_TRANSITION": "This transaction is no longer pending, so its status cannot change.",
    "ETAG_MISMATCH": "This transaction changed since you opened it. Look at it again, then retry.",
    "IDEMPOTENCY_KEY_REUSED": "This form was already sent with different values. Open the page again.",
    "TOO_MANY_WATCHERS": "Too many live views are open right now.",
    "RESUME_TOKEN_EXPIRED": "Live updates were interrupted for too long; reload the page.",
    "USER_DISABLED": "This account is disabled.",
}
CODES = {
    grpc.StatusCode.PERMISSION_DENIED: "You are not allowed to do that.",
    grpc.StatusCode.NOT_FOUND: "There is no such transaction.",
    grpc.StatusCode.UNAVAILABLE: "The payment service is unavailable right now. Try again in a moment.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "The payment service took too long to answer. Try again.",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "The payment service is busy. Try again in a moment.",
    grpc.StatusCode.UNAUTHENTICATED: "Your session has ended. Log in again.",
}
FIELDS = {
    "amount_minor": "Amount",
    "currency": "Currency",
    "description": "Description",
    "refund_of": "Payment",
    "reason": "Reason",
    "created_from": "From",
    "created_to": "To",
    "user_id": "User id",
    "page_token": "Page",
    "status": "Status",
    "type": "Type",
    "id": "Transaction id",
}


@dataclass(eq=False)  # not frozen: contextlib sets __traceback__ on exceptions it re-raises
class ServiceError(Exception):
    """What a service answered to a failed call, with the details decoded."""

    code: grpc.StatusCode
    message: str = ""
    reason: str = ""
    violations: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}".strip()

    @property
    def words(self) -> str:
        """One sentence for a person: the reason's, else the code's, else the service's message."""
        if self.violations:
            parts = [f"{FIELDS.get(name, name)}: {text}" for name, text in self.violations.items()]
            return "Please correct: " + "; ".join(parts) + "."
        text = REASONS.get(self.reason) or CODES.get(self.code) or (self.message or self.code.name)
        if self.retry_delay:
            text += f" (retry in {max(1, round(self.retry_delay))} s)"
        return text


def decode(err: grpc.RpcError) -> ServiceError:
    """ErrorInfo, BadRequest and RetryInfo of an aio (or sync) call error."""
    code_of = getattr(err, "code", None)
    code: grpc.StatusCode = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(err, "details", None)
    message = str(details_of() or "") if callable(details_of) else str(err)
    trailers_of = getattr(err, "trailing_metadata", None)
    trailers = (trailers_of() if callable(trailers_of) else None) or ()
    raw = next((value for key, value in trailers if key == _DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return ServiceError(code, message)
    status = status_pb2.Status.FromString(raw)
    reason, violations, delay, metadata = "", {}, None, {}
    for packed in status.details:
        info, bad, retry = (
            error_details_pb2.ErrorInfo(),
            error_details_pb2.BadRequest(),
            error_details_pb2.RetryInfo(),
        )
        if packed.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif packed.Unpack(bad):
            violations = {v.field: v.description for v in bad.field_violations}
        elif packed.Unpack(retry):
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    return ServiceError(code, message, reason, violations, delay, metadata)
