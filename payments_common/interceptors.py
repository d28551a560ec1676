"""The one server interceptor: authenticates, translates errors to rich status, logs each RPC.

Servicers raise DomainError subclasses and never call `context.abort` by
hand. The identity is set inside the wrapped handler (it runs on the worker
thread), because `intercept_service` runs before dispatch to the pool.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import grpc
from sqlalchemy import exc

from payments_common import db, metrics
from payments_common.errors import DomainError, InvalidArgument, Unauthenticated
from payments_common.tokens import Principal, TokenVerifier, bearer_token

log = logging.getLogger("payments.rpc")
_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

if TYPE_CHECKING:
    _Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor


def current_principal() -> Principal:
    """The verified caller of the RPC being handled."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("missing authorization metadata", reason="TOKEN_MISSING")
    return principal


_UNDECODABLE = object()  # stands in for request bytes that are not a message of the method


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Let undecodable bytes reach the handler, where they become INVALID_ARGUMENT (not INTERNAL)."""
    if deserialize is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception:  # DecodeError, invalid UTF-8 in a string field: the caller's bytes are bad
            return _UNDECODABLE

    return parse


class _Observer:
    """The metric series of one method, looked up once instead of on every call."""

    def __init__(self, method: str):
        self.in_flight = metrics.IN_FLIGHT.labels(method)
        self.latency = metrics.LATENCY.labels(method)
        self._method = method
        self._handled: dict[str, Any] = {}

    def handled(self, code: str) -> Any:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = metrics.RPCS.labels(self._method, code)
        return counter


class ServiceInterceptor(_Interceptor):
    """Wraps every unary handler of the service with auth, error mapping and an access log line."""

    def __init__(
        self, domain: str, verifier: TokenVerifier | None = None, public_methods: frozenset[str] = frozenset()
    ):
        self._domain = domain
        self._verifier = verifier
        self._public = public_methods
        # method -> (the handler it wrapped, the wrapper): built once, not on every call
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or handler.unary_unary is None or method.startswith(OPEN_SERVICES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        authenticate = self._verifier is not None and method not in self._public
        inner = handler.unary_unary

        observe = _Observer(method)

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            return self._handle(inner, request, context, method, authenticate, observe)

        wrapper = grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapper)
        return wrapper

    def _handle(
        self,
        inner: Callable[..., Any],
        request: Any,
        context: grpc.ServicerContext,
        method: str,
        authenticate: bool,
        observe: _Observer,
    ) -> Any:
        started = time.perf_counter()
        metadata = context.invocation_metadata()
        request_id = next((str(v) for k, v in metadata if k == "x-request-id"), "")[:64] or uuid.uuid4().hex
        context.set_trailing_metadata((("x-request-id", request_id),))
        failure: DomainError | None = None
        principal: Principal | None = None
        token = _principal.set(None)
        observe.in_flight.inc()
        try:
            if authenticate:
                assert self._verifier is not None
                principal = self._verifier.verify(bearer_token(metadata))
                _principal.set(principal)
            if request is _UNDECODABLE:
                raise InvalidArgument([("request", "is not a valid message of this method")])
            return inner(request, context)
        except DomainError as err:
            failure = err
        except exc.SQLAlchemyError as err:
            failure = db.translate(err)
            if failure is None:
                log.exception("database error in %s", method)
                failure = DomainError("internal error")
        except Exception:
            if context.code() is not None:  # type: ignore[attr-defined]  # the handler aborted on purpose
                raise
            log.exception("unhandled error in %s", method)
            failure = DomainError("internal error")
        finally:
            _principal.reset(token)
            observe.in_flight.dec()
            code = failure.code if failure else (context.code() or grpc.StatusCode.OK)  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - started
            observe.handled(code.name).inc()
            observe.latency.observe(elapsed)
            log.info(
                "rpc",
                extra={
                    "rpc_method": method,
                    "rpc_code": code.name,
                    "duration_ms": round(elapsed * 1000, 2),
                    "principal": principal.subject if principal else None,
                    "request_id": request_id,
                    "reason": failure.reason if failure else None,
                },
            )
        context.abort_with_status(failure.to_status(self._domain))
