"""Server bootstrap shared by both services: health, reflection, TLS, graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from payments_common import metrics
from payments_common.config import CommonSettings

log = logging.getLogger("payments.server")
# "liveness" stays SERVING while the process works (a database outage must not restart pods);
# "" and each service name follow database reachability (readiness).
LIVENESS = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Service:
    """One gRPC service to serve: its full name and a function that registers it on a server."""

    name: str
    register: Callable[[grpc.Server], None]


@dataclass
class RunningServer:
    """A started server with its health state; `stop` drains it gracefully."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: list[str]
    probe: Callable[[], bool]
    interval: float
    grace: float
    metrics_port: int | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _set_health(self, status: int) -> None:
        for name in ["", *self.service_names]:
            self.health.set(name, status)

    def watch_health(self) -> None:
        """Follow database reachability until stopped (runs on a daemon thread)."""
        while not self._stopping.is_set():
            self._set_health(SERVING if self.probe() else NOT_SERVING)
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        """Turn NOT_SERVING first, then refuse new calls and let in-flight ones finish."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        log.info("draining", extra={"grace_seconds": self.grace})
        self.server.stop(self.grace).wait()
        for close in self.closers:
            close()
        log.info("stopped")


def _credentials(settings: CommonSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def start_server(
    settings: CommonSettings,
    port: int,
    services: Sequence[Service],
    interceptors: Sequence[grpc.ServerInterceptor[Any, Any]],
    probe: Callable[[], bool],
    metrics_port: int | None = None,
) -> RunningServer:
    """Start a server with the services, health, (unless disabled) reflection and metrics."""
    limit = settings.grpc_max_message_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_max_workers, thread_name_prefix="rpc"),
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 1),
        ],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.name for s in services]
    for service in services:
        service.register(server)
    if settings.reflection_enabled:
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    address = f"{settings.grpc_host}:{port}"
    credentials = _credentials(settings)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
            log.warning("listening in PLAINTEXT (no TLS_CERT_FILE/TLS_KEY_FILE)", extra={"port": bound})
        else:
            bound = server.add_secure_port(address, credentials)
            log.info(
                "listening with TLS", extra={"port": bound, "mtls": settings.tls_client_ca_file is not None}
            )
    except RuntimeError:
        raise SystemExit(f"start-up error: cannot listen on {address} (port in use?)") from None
    server.start()
    bound_metrics = metrics.serve(metrics_port)
    running = RunningServer(
        server=server,
        port=bound,
        health=health_servicer,
        service_names=names,
        probe=probe,
        interval=settings.health_check_interval_seconds,
        grace=settings.shutdown_grace_seconds,
        metrics_port=bound_metrics,
    )
    health_servicer.set(LIVENESS, SERVING)
    running._set_health(SERVING if probe() else NOT_SERVING)
    threading.Thread(target=running.watch_health, name="health", daemon=True).start()
    return running


def serve_until_signalled(running: RunningServer) -> None:
    """Block until SIGTERM/SIGINT, then drain gracefully (closers release the pool)."""
    done = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    done.wait()
    running.stop()
