"""A tiny real OTLP/HTTP trace receiver for the tests: POST /v1/traces, protobuf, spans kept in memory."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.helpers import wait_until


@dataclass(frozen=True)
class Received:
    """One exported span with the attributes of its resource (service.name, ...)."""

    resource: dict[str, Any]
    span: Span

    @property
    def attributes(self) -> dict[str, Any]:
        return _values(self.span.attributes)


def _values(pairs: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in pairs}


class OtlpCollector:
    """Receives what an OTLP/HTTP exporter sends, as a collector would, on a free loopback port."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.posts = 0
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector._keep(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:  # quiet: the test says what it saw
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            self.posts += 1
            for resource_spans in request.resource_spans:
                resource = _values(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    self.received += [Received(resource, span) for span in scope_spans.spans]

    def spans_of_trace(self, trace_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.span.trace_id.hex() == trace_id]

    def wait_for_span(self, trace_id: str, name: str, timeout: float = 10.0) -> Received:
        """The span called `name` of trace `trace_id`; fails when none arrives in time."""
        assert wait_until(lambda: any(r.span.name == name for r in self.spans_of_trace(trace_id)), timeout), (
            f"no span {name} of trace {trace_id} after {timeout} s: {self.received}"
        )
        return next(r for r in self.spans_of_trace(trace_id) if r.span.name == name)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
