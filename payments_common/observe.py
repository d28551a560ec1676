"""`Observe`, the outermost of our interceptors: request id, one access-log line and the metrics of each call.

The request id comes from `x-request-id` (or is new) and is echoed in the trailers. A stream is
observed as one call: handled, timed and logged when it ends, with the number of messages it sent
(each also counted as it is sent). Tracing, when on, wraps even this (`tracing.py`), so the
access-log line carries the call's trace id.
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
    """The metrics of one method and its access-log line, for unary calls and streams alike.

    Counted as go-grpc-prometheus counts: started and one message received when the handler runs
    (the request is decoded by then), handled with the code and timed when the call ends; a unary
    call sends its one message if it succeeds, a stream counts each one as it goes (`streaming`).
    """

    __slots__ = ("handled", "labels", "latency", "method", "received", "sent", "started", "stream")

    def __init__(self, method: str, *, stream: bool):
        self.method, self.stream = method, stream
        service, _, name = method.lstrip("/").partition("/")
        self.labels = ("server_stream" if stream else "unary", service, name)
        self.started = metrics.STARTED.labels(*self.labels)
        self.received = metrics.MSG_RECEIVED.labels(*self.labels)
        self.sent = metrics.MSG_SENT.labels(*self.labels)
        self.latency = metrics.HANDLING_SECONDS.labels(*self.labels)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def open(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Call, Token[Call | None]]:
        """The call's record (request id echoed in the trailers), current for the call's task."""
        given = next((v for k, v in context.invocation_metadata() or () if k == "x-request-id"), "")
        call = Call(str(given)[:64] or os.urandom(16).hex())  # 32 hex digits, as uuid4().hex, cheaper
        context.set_trailing_metadata((("x-request-id", call.request_id),))
        self.started.inc()
        self.received.inc()
        if self.stream:
            call.sent = self.sent
        return call, CURRENT_CALL.set(call)

    def close(self, call: Call, started: float) -> None:
        """Count the call by its code, time it, and write its access-log line."""
        elapsed = time.perf_counter() - started
        counter = self.handled.get(call.code)
        if counter is None:
            code = metrics.GO_CODE_NAMES[call.code]
            counter = self.handled[call.code] = metrics.HANDLED.labels(*self.labels, code)
        counter.inc()
        self.latency.observe(elapsed)
        if not self.stream and call.code is grpc.StatusCode.OK:
            self.sent.inc()
        if log.isEnabledFor(logging.INFO):  # checked per call: the level may change at run time
            fields = {
                "rpc_method": self.method,
                "rpc_code": call.code.name,
                "duration_ms": round(elapsed * 1000, 2),
                "principal": call.principal.subject if call.principal else None,
                "request_id": call.request_id,
                "reason": call.reason,
            }
            if self.stream:
                fields["messages"] = call.messages
            log.info("rpc", extra=fields)


class Observe(PerMethod):
    """Request id, access log line and metrics of every call (a stream's when it ends)."""

    def wrap(self, method: str, inner: Behaviour) -> Behaviour:
        return self._observed(method, inner, stream=False)

    def wrap_stream(self, method: str, inner: StreamBehaviour) -> StreamBehaviour:
        return self._observed(method, streaming(inner), stream=True)

    @staticmethod
    def _observed(method: str, inner: Behaviour, *, stream: bool) -> Behaviour:
        record = _Record(method, stream=stream)

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
                record.close(call, started)

        return observed
