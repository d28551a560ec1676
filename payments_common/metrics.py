"""Prometheus metrics shared by both services, served on a separate HTTP port."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

log = logging.getLogger("payments.metrics")

RPCS = Counter(
    "grpc_server_handled_total", "RPCs completed, by method and status code", ["grpc_method", "grpc_code"]
)
LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "RPC handling time, by method",
    ["grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("grpc_server_in_flight", "RPCs being handled now, by method", ["grpc_method"])
DB_POOL_IN_USE = Gauge("db_pool_connections_in_use", "Database connections checked out of the pool")
DB_POOL_SIZE = Gauge("db_pool_size", "Database connections the pool may hold")


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
