"""Prometheus metrics shared by both services, served on a separate HTTP port."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
from grpc._cython import cygrpc  # type: ignore[attr-defined]  # channelz: no public Python API
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

log = logging.getLogger("payments.metrics")

# The server metrics of grpc-ecosystem's go-grpc-prometheus, by name, labels, help text and buckets
# (its handling-time histogram with client_golang's default buckets), so that stock dashboards and
# alerts work unchanged. grpc_method is the method's own name, grpc_service the full service name.
METHOD_LABELS = ("grpc_type", "grpc_service", "grpc_method")
STARTED = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", METHOD_LABELS)
HANDLED = Counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    [*METHOD_LABELS, "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    METHOD_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total",
    "Total number of RPC stream messages received on the server.",
    METHOD_LABELS,
)
MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", METHOD_LABELS
)
# grpc_code as go-grpc-prometheus writes it, grpc-go's `codes.Code.String()`: "InvalidArgument",
# "Canceled"; stock alerts match these (grpc_code=~"Unknown|Internal|Unavailable|..."), not "INTERNAL"
GO_CODE_NAMES = {
    code: "".join(word.capitalize() for word in code.name.split("_")) for code in grpc.StatusCode
} | {grpc.StatusCode.OK: "OK", grpc.StatusCode.CANCELLED: "Canceled"}
DB_POOL_IN_USE = Gauge("db_pool_connections_in_use", "Database connections checked out of the pool")
DB_POOL_SIZE = Gauge("db_pool_size", "Database connections the pool may hold")


class TransportCollector(Collector):
    """HTTP/2 figures of this process's gRPC servers, read from grpc core's channelz on each scrape.

    The interceptors never see a stream that a client resets before its handler runs; channelz
    counts it (a rapid reset shows as failed calls climbing, most of them on one connection).
    Streams refused over GRPC_MAX_CONCURRENT_STREAMS are counted nowhere in grpc.
    """

    def collect(self) -> Iterator[Metric]:
        started = failed = connections = worst = 0
        for server in _channelz("servers", cygrpc.channelz_get_servers(0)).get("server", []):
            data = server.get("data", {})
            started += int(data.get("callsStarted", 0))
            failed += int(data.get("callsFailed", 0))
            server_id = int(server["ref"]["serverId"])
            refs = _channelz("sockets", cygrpc.channelz_get_server_sockets(server_id, 0, 10_000))
            for ref in refs.get("socketRef", []):
                connections += 1
                socket = _channelz("socket", cygrpc.channelz_get_socket(int(ref["socketId"])))
                worst = max(worst, int(socket.get("socket", {}).get("data", {}).get("streamsFailed", 0)))
        yield CounterMetricFamily(
            "grpc_transport_calls_started", "HTTP/2 streams the servers accepted", value=started
        )
        yield CounterMetricFamily(
            "grpc_transport_calls_failed",
            "accepted streams that ended in error, including those the client reset (RST_STREAM)",
            value=failed,
        )
        yield GaugeMetricFamily("grpc_transport_connections", "open HTTP/2 connections", value=connections)
        yield GaugeMetricFamily(
            "grpc_transport_connection_calls_failed_max",
            "failed streams of the open connection with the most: one rapid-resetting peer stands out",
            value=worst,
        )


def _channelz(what: str, raw: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        log.warning("unreadable channelz answer", extra={"what": what})
        return {}
    return parsed if isinstance(parsed, dict) else {}


REGISTRY.register(TransportCollector())


def watch_pool(engine: Engine) -> None:
    """Report the engine's pool usage on every scrape."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        DB_POOL_IN_USE.set_function(pool.checkedout)
        DB_POOL_SIZE.set_function(pool.size)


def serve(port: int | None, host: str = "0.0.0.0") -> int | None:
    """Start the /metrics endpoint (port 0 picks a free port); returns the bound port."""
    if port is None:
        return None
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as err:
        raise SystemExit(f"start-up error: metrics port {port}: {err.strerror}") from None
    bound = int(server.server_port)
    log.info("metrics endpoint", extra={"port": bound})
    return bound
