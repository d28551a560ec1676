"""One exception hierarchy in which each error knows its gRPC status code and details."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


class DomainError(Exception):
    """Base of every error a caller may cause; carries the code and an ErrorInfo reason."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})

    def details(self, domain: str) -> list[Message]:
        """The google.rpc detail messages sent in grpc-status-details-bin."""
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=domain, metadata=self.metadata)]

    def to_status(self, domain: str) -> grpc.Status:
        """A grpc.Status with the rich details packed, for context.abort_with_status."""
        packed = []
        for detail in self.details(domain):
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        return rpc_status.to_status(proto)


class InvalidArgument(DomainError):
    """A request field has a bad value; lists every violation."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[tuple[str, str]], message: str | None = None):
        self.violations = list(violations)
        summary = "; ".join(f"{field}: {text}" for field, text in self.violations)
        super().__init__(message or f"invalid request: {summary}")

    def details(self, domain: str) -> list[Message]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
                for field, text in self.violations
            ]
        )
        return [*super().details(domain), bad]


class Unauthenticated(DomainError):
    """Missing, malformed, expired or forged credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """Valid identity without the needed role or scope."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(DomainError):
    """The resource does not exist or is not the caller's."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """A unique resource already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in the state the operation needs."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrency conflict; the caller may re-read and retry."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class _Retryable(DomainError):
    def __init__(self, message: str, *, retry_after: float | None = None, reason: str | None = None):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after

    def details(self, domain: str) -> list[Message]:
        details = super().details(domain)
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(max(self.retry_after, 0.0) * 1e9))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return details


class ResourceExhausted(_Retryable):
    """Too many attempts or too large a request."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(_Retryable):
    """A dependency (the database) is unreachable or overloaded."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The caller's deadline passed; the database work was cancelled."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"
