"""Call metadata every RPC needs: a bearer token, a request id and a deadline."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc

from payments_client import retry

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

if TYPE_CHECKING:
    _Base = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Base = grpc.UnaryUnaryClientInterceptor


class AccessTokens(Protocol):
    """Anything that hands out a currently valid access token (see TokenSource)."""

    def access_token(self) -> str: ...

    def invalidate(self, access_token: str) -> None: ...


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class MetadataInterceptor(_Base):
    """Adds `authorization: Bearer`, an `x-request-id` and a default deadline to unary calls.

    Values the caller already set win: the client passes one request id per
    logical call so that every retry of it shares the id in the server logs.
    The token is fetched per attempt, so a refreshed token is used at once.
    """

    def __init__(self, tokens: AccessTokens | None, default_timeout: float = 10.0):
        self._tokens = tokens
        self._default_timeout = default_timeout

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = list(client_call_details.metadata or ())
        keys = {key for key, _ in metadata}
        if "x-request-id" not in keys:
            metadata.append(("x-request-id", uuid.uuid4().hex))
        if self._tokens is not None and "authorization" not in keys:
            metadata.append(("authorization", f"Bearer {self._tokens.access_token()}"))
        details = _CallDetails(
            method=client_call_details.method,
            timeout=self._default_timeout
            if client_call_details.timeout is None
            else client_call_details.timeout,
            metadata=tuple(metadata),
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
            compression=client_call_details.compression,
        )
        return continuation(details, request)


def call_with_token(
    tokens: AccessTokens,
    attempt: Callable[[Metadata, float], T],
    *,
    idempotent: bool,
    timeout: float,
    policy: retry.RetryPolicy,
) -> T:
    """One logical call: one request id for all its attempts, a fresh token for each.

    The token an attempt used is remembered so that an UNAUTHENTICATED answer
    invalidates exactly that token, and threads refused together renew once.
    """
    request_id = uuid.uuid4().hex
    used = ""

    def one(left: float) -> T:
        nonlocal used
        used = tokens.access_token()
        return attempt((("authorization", f"Bearer {used}"), ("x-request-id", request_id)), left)

    return retry.call(
        one,
        idempotent=idempotent,
        timeout=timeout,
        policy=policy,
        reauthenticate=lambda: tokens.invalidate(used),
        request_id=request_id,
    )


def authenticated_channel(
    channel: grpc.Channel, tokens: AccessTokens, default_timeout: float = 10.0
) -> grpc.Channel:
    """`channel` with bearer token, request id and default deadline added, for callers of raw stubs."""
    return grpc.intercept_channel(channel, MetadataInterceptor(tokens, default_timeout))
