"""What the interceptors share: the record of the call being handled, and per-method wrapping.

The `Call` record is a context variable: the coroutines of one call run in one task, and
`Offload` copies the context to the database threads. `PerMethod` wraps each method's behaviour
once (not per call): unary-unary methods with `wrap`, unary-stream methods with `wrap_stream`;
stream-request methods (only reflection, which is open) pass through.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
from prometheus_client import Counter

from payments_common.errors import Unauthenticated
from payments_common.tokens import Principal

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
Behaviour = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
# a unary-stream behaviour: an async generator of the responses, or a coroutine that writes them
StreamBehaviour = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Any] | Awaitable[None]]
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
    messages: int = 0  # responses a stream sent
    sent: Counter | None = None  # a stream's grpc_server_msg_sent_total, counted as each message goes


CURRENT_CALL: ContextVar[Call | None] = ContextVar("call", default=None)


def current_principal() -> Principal:
    """The verified caller of the RPC being handled."""
    call = CURRENT_CALL.get()
    if call is None or call.principal is None:
        raise Unauthenticated("missing authorization metadata", reason="TOKEN_MISSING")
    return call.principal


class PerMethod(Interceptor):
    """Wraps the behaviour of every method it applies to, once per method (not per call).

    Unary-unary methods get `wrap`, unary-stream methods `wrap_stream`; stream-request methods
    (none in our contracts but reflection, which is open) pass through.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def applies(self, method: str) -> bool:
        return not method.startswith(OPEN_SERVICES)

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        raise NotImplementedError

    def wrap_stream(self, method: str, inner: StreamBehaviour) -> StreamBehaviour:
        """A stream is wrapped as a unary call is, around the coroutine that sends its messages."""
        return self.wrap(method, streaming(inner))

    def deserializer(self, original: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        return original

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: Any,
    ) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method: str = details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        if not self.applies(method):
            return handler
        if handler.unary_unary is not None:
            wrapper = grpc.unary_unary_rpc_method_handler(
                self.wrap(method, handler.unary_unary),  # type: ignore[arg-type]  # an aio behaviour
                request_deserializer=self.deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None:
            wrapper = grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, handler.unary_stream),  # type: ignore[arg-type]  # an aio behaviour
                request_deserializer=self.deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        else:
            return handler
        self._wrapped[method] = (handler, wrapper)
        return wrapper


def streaming(inner: StreamBehaviour) -> Behaviour:
    """The coroutine that runs a unary-stream behaviour: it writes (and counts) what `inner` yields.

    Every interceptor's stream wrapper is a plain coroutine around this one, so a message passes
    through one generator (the servicer's) on its way out, not one per interceptor; only the
    innermost layer iterates, the outer ones await the layer below.
    """

    async def send(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        responses = inner(request, context)
        if not isinstance(responses, AsyncGenerator):  # a layer below, which writes by itself
            await cast(Awaitable[None], responses)
            return
        call = CURRENT_CALL.get()
        async with contextlib.aclosing(responses):  # closed in this task, whatever ends the call
            async for response in responses:
                if call is not None:  # handed to the transport (a cancel may still stop its last one)
                    call.messages += 1
                    if call.sent is not None:
                        call.sent.inc()
                await context.write(response)

    return send
