"""Server interceptors, one job each, for the `grpc.aio` servers. In order, outermost first:

- `Observe`: request id (from `x-request-id` or new, echoed in the trailers), one access-log line
  and the metrics of each call;
- `MapErrors`: a raised `DomainError` becomes a rich status (ErrorInfo, BadRequest, RetryInfo);
  anything else is logged and INTERNAL. Servicers never call `context.abort` by hand;
- `Authenticate`: the bearer token, verified, becomes the call's principal (`current_principal`).

They share a `Call` record through a context variable; coroutines of one call run in one task,
and `Offload` copies the context to the database threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from payments_common import metrics
from payments_common.errors import DomainError, InvalidArgument, Unauthenticated
from payments_common.server import Offload
from payments_common.tokens import Principal, TokenVerifier, bearer_token

log = logging.getLogger("payments.rpc")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
Behaviour = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
if TYPE_CHECKING:
    Interceptor = grpc.aio.ServerInterceptor[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]  # of any request and response type
else:
    Interceptor = grpc.aio.ServerInterceptor
    Handler = grpc.RpcMethodHandler


@dataclass(slots=True)
class Call:
    """What the interceptors learn about one call, for its log line and metrics."""

    request_id: str
    principal: Principal | None = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str | None = None


_call: ContextVar[Call | None] = ContextVar("call", default=None)


def current_principal() -> Principal:
    """The verified caller of the RPC being handled."""
    call = _call.get()
    if call is None or call.principal is None:
        raise Unauthenticated("missing authorization metadata", reason="TOKEN_MISSING")
    return call.principal


class _PerMethod(Interceptor):
    """Wraps the unary behaviour of every method it applies to, once per method (not per call)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def applies(self, method: str) -> bool:
        return not method.startswith(OPEN_SERVICES)

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        raise NotImplementedError

    def deserializer(self, original: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        return original

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: Any,
    ) -> Handler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or handler.unary_unary is None or not self.applies(method):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapper = grpc.unary_unary_rpc_method_handler(
            self.wrap(method, handler.unary_unary),  # type: ignore[arg-type]  # an aio behaviour
            request_deserializer=self.deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapper)
        return wrapper


class Observe(_PerMethod):
    """Request id, access log line and metrics of every call."""

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        in_flight, latency = metrics.IN_FLIGHT.labels(method), metrics.LATENCY.labels(method)
        handled: dict[grpc.StatusCode, Any] = {}
        info = log.isEnabledFor  # checked per call: the level may change at run time

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            given = next((v for k, v in context.invocation_metadata() or () if k == "x-request-id"), "")
            call = Call(str(given)[:64] or uuid.uuid4().hex)
            context.set_trailing_metadata((("x-request-id", call.request_id),))
            token = _call.set(call)
            in_flight.inc()
            try:
                return await inner(request, context)
            except asyncio.CancelledError:
                call.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                _call.reset(token)
                in_flight.dec()
                elapsed = time.perf_counter() - started
                counter = handled.get(call.code)
                if counter is None:
                    counter = handled[call.code] = metrics.RPCS.labels(method, call.code.name)
                counter.inc()
                latency.observe(elapsed)
                if info(logging.INFO):
                    log.info(
                        "rpc",
                        extra={
                            "rpc_method": method,
                            "rpc_code": call.code.name,
                            "duration_ms": round(elapsed * 1000, 2),
                            "principal": call.principal.subject if call.principal else None,
                            "request_id": call.request_id,
                            "reason": call.reason,
                        },
                    )

        return observed


_UNDECODABLE = object()  # stands in for request bytes that are not a message of the method


class MapErrors(_PerMethod):
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
            call = _call.get()
            trailers: tuple[tuple[str, str | bytes], ...] = ()
            if call is not None:
                call.code, call.reason = failure.code, failure.reason
                trailers = (("x-request-id", call.request_id),)
            status = failure.to_status(self._domain)
            await context.abort(status.code, status.details, (*status.trailing_metadata, *trailers))

        return mapped


class Authenticate(_PerMethod):
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
            principal = verifier.remembered(token) or await offload(verifier.verify, token)
            call = _call.get()
            if call is not None:
                call.principal = principal
            return await inner(request, context)

        return authenticated


def interceptors_for(
    domain: str, verifier: TokenVerifier, offload: Offload, public_methods: frozenset[str] = frozenset()
) -> list[Interceptor]:
    """The interceptors of a service, outermost first (the order the module docstring explains)."""
    return [Observe(), MapErrors(domain), Authenticate(verifier, offload, public_methods)]
