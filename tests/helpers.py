"""Small helpers shared by the tests: error details and a logged-in caller."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class Caller:
    """A logged-in user or service principal as the tests see it."""

    id: str
    email: str = ""
    password: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the access token."""
        return (("authorization", f"Bearer {self.access_token}"),)


@dataclass
class ErrorDetails:
    """The google.rpc details of a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    violations: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None


def details_of(err: grpc.RpcError) -> ErrorDetails:
    """Unpack ErrorInfo, BadRequest and RetryInfo from the status trailer."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    out = ErrorDetails(code=err.code(), message=err.details() or "")  # type: ignore[attr-defined]
    if status is None:
        return out
    for any_detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        retry = error_details_pb2.RetryInfo()
        if any_detail.Unpack(info):
            out.reason, out.domain = info.reason, info.domain
        elif any_detail.Unpack(bad):
            out.violations = {v.field: v.description for v in bad.field_violations}
        elif any_detail.Unpack(retry):
            out.retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return out
