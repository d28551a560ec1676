"""The one error a caller of the client package catches, with the server's reasons unpacked.

Callers branch on `reason` (IDEMPOTENCY_KEY_REUSED, ETAG_MISMATCH, ...) rather
than on message text, so the google.rpc details are decoded once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class StatusDetails:
    """What the server said about a failure: code, message and the google.rpc details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    violations: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # ErrorInfo's, e.g. a watch's resume_token


def status_details(err: grpc.RpcError) -> StatusDetails:
    """Decode ErrorInfo, BadRequest and RetryInfo from the grpc-status-details-bin trailer."""
    code: grpc.StatusCode = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message: str = (err.details() or "") if isinstance(err, grpc.Call) else str(err)
    reason, domain, delay = "", "", None
    violations: dict[str, str] = {}
    extra: dict[str, str] = {}
    try:
        status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    except ValueError:  # a trailer that contradicts the status line: trust the status line
        status = None
    packed: Any
    for packed in status.details if status is not None else ():
        info, bad, retry = (
            error_details_pb2.ErrorInfo(),
            error_details_pb2.BadRequest(),
            error_details_pb2.RetryInfo(),
        )
        if packed.Unpack(info):
            reason, domain, extra = info.reason, info.domain, dict(info.metadata)
        elif packed.Unpack(bad):
            violations = {v.field: v.description for v in bad.field_violations}
        elif packed.Unpack(retry):
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    return StatusDetails(code, message, reason, domain, violations, delay, extra)


class PaymentsError(grpc.RpcError):
    """A call that failed for good (after any retries the policy allowed).

    It is a `grpc.RpcError` with `code()` and `details()` so existing handlers
    keep working; `reason`, `violations` and `attempts` are the typed extras.
    """

    def __init__(self, details: StatusDetails, attempts: int, request_id: str = ""):
        super().__init__(f"{details.code.name}: {details.message}")
        self.status = details
        self.attempts = attempts
        self.request_id = request_id  # the x-request-id the server logged, for support tickets

    def code(self) -> grpc.StatusCode:
        """The final gRPC status code."""
        return self.status.code

    def details(self) -> str:
        """The server's message."""
        return self.status.message

    @property
    def reason(self) -> str:
        """The ErrorInfo reason, e.g. IDEMPOTENCY_KEY_REUSED; empty when the server sent none."""
        return self.status.reason

    @property
    def violations(self) -> dict[str, str]:
        """Field -> description of an INVALID_ARGUMENT."""
        return self.status.violations
