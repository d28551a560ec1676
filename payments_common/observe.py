"""`Observe`, the outermost interceptor: request id, one access-log line and the metrics of each call.

The request id comes from `x-request-id` (or is new) and is echoed in the trailers. A stream is
observed as one call: counted and logged when it ends, with the number of messages it sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextvars import Token
from typing import Any

import grpc

from payments_common import metrics
from payments_common.calls import CURRENT_CALL, Behaviour, Call, PerMethod, StreamBehaviour, streaming

log = logging.getLogger("payments.rpc")


class _Record:
    """The metrics of one method and its access-log line, for unary calls and streams alike."""

    __slots__ = ("handled", "in_flight", "latency", "method")

    def __init__(self, method: str):
        self.method = method
        self.in_flight, self.latency = metrics.IN_FLIGHT.labels(method), metrics.LATENCY.labels(method)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def open(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Call, Token[Call | None]]:
        """The call's record (request id echoed in the trailers), current for the call's task."""
        given = next((v for k, v in context.invocation_metadata() or () if k == "x-request-id"), "")
        call = Call(str(given)[:64] or os.urandom(16).hex())  # 32 hex digits, as uuid4().hex, cheaper
        context.set_trailing_metadata((("x-request-id", call.request_id),))
        self.in_flight.inc()
        return call, CURRENT_CALL.set(call)

    def close(self, call: Call, started: float, messages: int | None = None) -> None:
        """Count the call by its code, time it, and write its access-log line."""
        self.in_flight.dec()
        elapsed = time.perf_counter() - started
        counter = self.handled.get(call.code)
        if counter is None:
            counter = self.handled[call.code] = metrics.RPCS.labels(self.method, call.code.name)
        counter.inc()
        self.latency.observe(elapsed)
        if log.isEnabledFor(logging.INFO):  # checked per call: the level may change at run time
            fields = {
                "rpc_method": self.method,
                "rpc_code": call.code.name,
                "duration_ms": round(elapsed * 1000, 2),
                "principal": call.principal.subject if call.principal else None,
                "request_id": call.request_id,
                "reason": call.reason,
            }
            if messages is not None:
                fields["messages"] = messages
            log.info("rpc", extra=fields)


class Observe(PerMethod):
    """Request id, access log line and metrics of every call (a stream's when it ends)."""

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        return self._observed(method, inner, stream=False)

    def wrap_stream(self, method: str, inner: StreamBehaviour) -> StreamBehaviour:
        return self._observed(method, streaming(inner), stream=True)

    @staticmethod
    def _observed(method: str, inner: Behaviour, *, stream: bool) -> Behaviour:
        record = _Record(method)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            call, token = record.open(context)
            try:
                return await inner(request, context)
            except asyncio.CancelledError:  # the caller went away (a stream: mid-stream)
                call.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                CURRENT_CALL.reset(token)
                record.close(call, started, call.messages if stream else None)

        return observed
