"""OpenTelemetry tracing of the servers' calls: off unless an OTLP endpoint is configured.

On (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`), each
call but health and reflection gets a SERVER span from opentelemetry-instrumentation-grpc's aio
server interceptor, the child of the caller's W3C `traceparent` when it sends one. Spans go out in
batches over OTLP/HTTP (protobuf) as service `OTEL_SERVICE_NAME`; the SDK reads its other standard
variables itself (`OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, ...). Each log
line made while a span is active carries its trace id (`logs.record_trace_ids`).

The interceptor goes first, around ours, so the access-log line of `Observe` is written inside
the span. Each server has a tracer provider of its own (not the global one), flushed and shut down
when the server stops. Off, nothing of the SDK is even imported.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from payments_common import logs
from payments_common.calls import OPEN_SERVICES, Interceptor
from payments_common.config import CommonSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("payments.tracing")


@dataclass
class Tracing:
    """The server interceptor of a tracing server, and the provider to flush when it stops."""

    interceptor: Interceptor
    provider: TracerProvider
    endpoint: str

    def shutdown(self) -> None:
        """Export the spans still buffered, then stop exporting."""
        self.provider.shutdown()


def traces_endpoint(settings: CommonSettings) -> str | None:
    """Where spans go, as the OpenTelemetry SDKs resolve it; None: tracing is off."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return None


def traced(details: Any) -> bool:
    """Calls worth a trace: not health probes (every few seconds, from every prober) nor reflection."""
    return not str(details.method).startswith(OPEN_SERVICES)


def tracing_for(settings: CommonSettings) -> Tracing | None:
    """Tracing for one server, or None (nothing installed, nothing exported) without an endpoint."""
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    logs.record_trace_ids()
    log.info("tracing", extra={"endpoint": endpoint, "service_name": settings.otel_service_name})
    return Tracing(_server_interceptor(provider), provider, endpoint)


def _server_interceptor(provider: TracerProvider) -> Interceptor:
    """The instrumentation's aio server interceptor, also for streams that write rather than yield.

    It iterates every unary-stream behaviour (`async for`), but grpc.aio lets a behaviour be a
    coroutine that calls `context.write`, as each of our interceptors' stream wrappers is
    (`calls.streaming`), and as grpcio-health-checking's `Watch` is: such a one is awaited in its
    span as a unary call is (open-telemetry/opentelemetry-python-contrib#3066).
    """
    from opentelemetry.instrumentation.grpc._aio_server import OpenTelemetryAioServerInterceptor
    from opentelemetry.instrumentation.grpc.version import __version__
    from opentelemetry.trace import get_tracer

    class ServerInterceptor(OpenTelemetryAioServerInterceptor):
        # the instrumentation has no annotations: its methods are untyped calls to mypy
        def _intercept_aio_server_stream(self, behavior: Any, handler_call_details: Any) -> Any:
            if inspect.isasyncgenfunction(behavior):
                return super()._intercept_aio_server_stream(behavior, handler_call_details)  # type: ignore[no-untyped-call]
            return self._intercept_aio_server_unary(behavior, handler_call_details)  # type: ignore[no-untyped-call]

    # the tracer that the instrumentation's own `aio_server_interceptor(provider)` would make
    schema = "https://opentelemetry.io/schemas/1.11.0"
    tracer = get_tracer("opentelemetry.instrumentation.grpc", __version__, provider, schema_url=schema)
    return ServerInterceptor(tracer, filter_=traced)  # type: ignore[no-untyped-call]
