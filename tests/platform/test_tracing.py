"""OpenTelemetry tracing, exported to a real OTLP/HTTP receiver: spans continue the caller's trace."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.otlp import OtlpCollector
from tests.servers import tx_settings
from tests.stream.watching import Watcher, payment, stub_at

AUTH = "/payments.auth.v1.AuthService"
WATCH = "/payments.transaction.v1.TransactionService/WatchTransactions"
OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME")


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpCollector]:
    """A receiver; spans leave the servers within 50 ms of ending (the SDK's OTEL_BSP_SCHEDULE_DELAY)."""
    for name in OTLP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    receiver = OtlpCollector()
    yield receiver
    receiver.close()


def _traceparent() -> tuple[str, str, tuple[str, str]]:
    """A caller's trace id, its span id, and the W3C header that carries both."""
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, parent, ("traceparent", f"00-{trace_id}-{parent}-01")


def _access_lines(secret_watch, start: int, **match: object) -> list[dict]:
    lines = [json.loads(line) for line in secret_watch.lines[start:]]
    return [line for line in lines if line.get("msg") == "rpc" and match.items() <= line.items()]


def test_a_call_with_a_traceparent_is_a_server_span_of_that_trace_and_its_log_line_says_so(
    collector, monkeypatch, start_auth, new_user, secret_watch
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    running = start_auth()
    assert running.tracing is not None and running.tracing.endpoint == f"{collector.endpoint}/v1/traces"
    caller = new_user()
    trace_id, parent, header = _traceparent()
    start = len(secret_watch.lines)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            md = (*caller.md, header, ("x-request-id", "traced-ok"))
            stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=md, timeout=5)
            with pytest.raises(grpc.RpcError):
                credentials = auth_pb2.PasswordCredentials(email=caller.email, password="wrong")
                stub.Login(auth_pb2.LoginRequest(password=credentials), metadata=(header,), timeout=5)
            stub.GetJwks(
                auth_pb2.GetJwksRequest(), metadata=(("x-request-id", "untraced-caller"),), timeout=5
            )

        got = collector.wait_for_span(trace_id, f"{AUTH}/GetCurrentUser")
        assert got.span.parent_span_id.hex() == parent
        assert got.span.kind == Span.SPAN_KIND_SERVER
        assert got.resource["service.name"] == "auth_service"  # OTEL_SERVICE_NAME unset: the service's
        assert got.attributes["rpc.system"] == "grpc"
        assert (got.attributes["rpc.service"], got.attributes["rpc.method"]) == (AUTH[1:], "GetCurrentUser")
        (line,) = _access_lines(secret_watch, start, request_id="traced-ok")
        assert (line["trace_id"], line["span_id"]) == (trace_id, got.span.span_id.hex())

        refused = collector.wait_for_span(trace_id, f"{AUTH}/Login")
        assert refused.span.parent_span_id.hex() == parent
        assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]

        (root_line,) = _access_lines(secret_watch, start, request_id="untraced-caller")
        root = collector.wait_for_span(root_line["trace_id"], f"{AUTH}/GetJwks")  # a trace of its own
        assert root.span.parent_span_id == b"" and root_line["trace_id"] != trace_id
    finally:
        running.stop()  # flushes and shuts its exporter down


def test_a_watch_stream_is_one_span_of_the_callers_trace(
    collector, monkeypatch, database_url, auth_address, new_user, secret_watch
):
    from transaction_service.app import start

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.endpoint}/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payments-under-test")
    running = start(tx_settings(database_url, auth_address))
    channel, stub = stub_at(f"127.0.0.1:{running.port}")
    trace_id, parent, header = _traceparent()
    start_line = len(secret_watch.lines)
    try:
        alice = new_user()
        watcher = Watcher(stub, (*alice.md, header)).live()
        payment(stub, alice)
        assert len(watcher.wait_for(1)) == 1
        watcher.stop()
        got = collector.wait_for_span(trace_id, WATCH)
        assert got.span.parent_span_id.hex() == parent
        assert got.resource["service.name"] == "payments-under-test"
        assert got.span.end_time_unix_nano > got.span.start_time_unix_nano
        (line,) = _access_lines(secret_watch, start_line, rpc_method=WATCH, trace_id=trace_id)
        assert line["messages"] == 1 and line["span_id"] == got.span.span_id.hex()
    finally:
        channel.close()
        running.stop()


def test_without_an_otlp_endpoint_no_interceptor_is_installed_and_no_span_is_active(
    collector, start_auth, secret_watch
):
    running = start_auth()  # the fixture removed every OTEL_EXPORTER_OTLP_* variable
    assert running.tracing is None
    _trace_id, _parent, header = _traceparent()
    start = len(secret_watch.lines)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        md = (header, ("x-request-id", "not-traced"))
        auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), metadata=md, timeout=5)
    (line,) = _access_lines(secret_watch, start, request_id="not-traced")
    assert "trace_id" not in line and "span_id" not in line
    assert collector.posts == 0
