"""Server interceptors, one job each, for the `grpc.aio` servers. In order, outermost first:

- `Observe` (`observe.py`): request id (from `x-request-id` or new, echoed in the trailers), one
  access-log line and the metrics of each call;
- `MapErrors`: a raised `DomainError` becomes a rich status (ErrorInfo, BadRequest, RetryInfo);
  anything else is logged and INTERNAL. Servicers never call `context.abort` by hand;
- `Authenticate`: the bearer token, verified, becomes the call's principal (`current_principal`).

With tracing on, `start_server` puts OpenTelemetry's interceptor around all three (`tracing.py`).

They share a `Call` record (`calls.py`). Each wraps unary-unary and unary-stream methods alike: a
stream is authenticated once, before its first message; it ends with the same rich status and
trailers when its generator raises; and it gets one access-log line, with the messages it sent,
when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc

from payments_common.calls import (
    CURRENT_CALL,
    Behaviour,
    Interceptor,
    PerMethod,
    current_principal,
)
from payments_common.errors import DomainError, InvalidArgument, Unavailable
from payments_common.observe import Observe
from payments_common.server import Offload
from payments_common.tokens import TokenVerifier, bearer_token

__all__ = ["Authenticate", "Interceptor", "MapErrors", "Observe", "current_principal", "interceptors_for"]
log = logging.getLogger("payments.rpc")


_UNDECODABLE = object()  # stands in for request bytes that are not a message of the method


class MapErrors(PerMethod):
    """Domain errors become rich status; undecodable requests INVALID_ARGUMENT; the rest INTERNAL."""

    def __init__(self, domain: str):
        super().__init__()
        self._domain = domain

    def deserializer(self, original: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if original is None:
            return None

        def tolerant(raw: bytes) -> Any:
            try:
                return original(raw)
            except Exception:  # DecodeError, invalid UTF-8 in a string field: the caller's bytes are bad
                return _UNDECODABLE

        return tolerant

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        async def mapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                if request is _UNDECODABLE:
                    raise InvalidArgument([("request", "is not a valid message of this method")])
                return await inner(request, context)
            except DomainError as err:
                failure = err
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception:
                log.exception("unhandled error in %s", method)
                failure = DomainError("internal error")
            await self._abort(context, failure)

        return mapped

    async def _abort(self, context: grpc.aio.ServicerContext[Any, Any], failure: DomainError) -> None:
        """End the call with `failure` as a rich status, the request id still in the trailers."""
        call = CURRENT_CALL.get()
        trailers: tuple[tuple[str, str | bytes], ...] = ()
        if call is not None:
            call.code, call.reason = failure.code, failure.reason
            trailers = (("x-request-id", call.request_id),)
        status = failure.to_status(self._domain)
        await context.abort(status.code, status.details, (*status.trailing_metadata, *trailers))


class Authenticate(PerMethod):
    """Verifies the bearer token of every method but the public ones."""

    def __init__(
        self, verifier: TokenVerifier, offload: Offload, public_methods: frozenset[str] = frozenset()
    ):
        super().__init__()
        self._verifier = verifier
        self._offload = offload
        self._public = public_methods

    def applies(self, method: str) -> bool:
        return super().applies(method) and method not in self._public

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        verifier, offload = self._verifier, self._offload

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = bearer_token(tuple(context.invocation_metadata() or ()))
            # a token seen before is answered from memory; a new one may need a key fetch, which blocks
            try:
                principal = verifier.remembered(token) or await offload(verifier.verify, token)
            except Unavailable as err:
                if err.reason != "KEY_UNKNOWN_YET":
                    raise
                # a new signing key, or a forged kid: wait (holding no thread) for the next key refresh
                await asyncio.sleep(err.retry_after or 0.1)
                principal = await offload(verifier.verify, token, patient=False)
            call = CURRENT_CALL.get()
            if call is not None:
                call.principal = principal
            return await inner(request, context)

        return authenticated


def interceptors_for(
    domain: str, verifier: TokenVerifier, offload: Offload, public_methods: frozenset[str] = frozenset()
) -> list[Interceptor]:
    """The interceptors of a service, outermost first (the order the module docstring explains)."""
    return [Observe(), MapErrors(domain), Authenticate(verifier, offload, public_methods)]
