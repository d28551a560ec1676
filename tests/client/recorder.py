"""A client interceptor that records every attempt as it leaves the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    _Base = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Base = grpc.UnaryUnaryClientInterceptor


@dataclass
class Attempt:
    """One RPC as it left the client: what a server (or a proxy) would see."""

    method: str
    timeout: float | None
    metadata: dict[str, str]
    request: Any


@dataclass
class Recorder(_Base):
    """A real client interceptor placed after the client's own, so it sees the final metadata."""

    attempts: list[Attempt] = field(default_factory=list)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        md = {key: str(value) for key, value in details.metadata or ()}
        self.attempts.append(Attempt(details.method.rsplit("/", 1)[-1], details.timeout, md, request))
        return continuation(details, request)

    def of(self, method: str) -> list[Attempt]:
        """The attempts of one RPC method (e.g. "CreateTransaction")."""
        return [a for a in self.attempts if a.method == method]
