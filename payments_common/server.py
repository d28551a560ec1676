"""Server bootstrap shared by both services: `grpc.aio` on uvloop, health, reflection, TLS, drain.

Each call is a coroutine on one event loop, so a call that has sent its headers and no message
holds no thread; database work runs on a bounded thread pool (`Offload`). The loop runs on a
thread of its own, so `start_server` returns a handle that plain (synchronous) code, the tests
and the signal handler of `serve_until_signalled`, can stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from payments_common import metrics, reflection
from payments_common.calls import Interceptor
from payments_common.config import CommonSettings
from payments_common.offload import Offload
from payments_common.tracing import Tracing, tracing_for

__all__ = ["Offload", "RunningServer", "Service", "start_server"]  # Offload: where callers found it
log = logging.getLogger("payments.server")
# "liveness" stays SERVING while the process works (a database outage must not restart pods);
# "" and each service name follow database reachability (readiness).
LIVENESS = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# the longest a pending SIGTERM/SIGINT waits for the main thread (see serve_until_signalled)
SIGNAL_POLL_SECONDS = 0.2


@dataclass
class Service:
    """One gRPC service to serve: its full name and a function that registers it on a server."""

    name: str
    register: Callable[[grpc.aio.Server], None]


class StartupError(Exception):
    """The server could not start (e.g. the port is taken); the message names why."""


@dataclass
class RunningServer:
    """A started server on its event loop thread; `stop` drains it gracefully."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: list[str]
    probe: Callable[[], bool]
    interval: float
    grace: float
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    metrics_port: int | None = None
    tracing: Tracing | None = None  # None: no OTLP endpoint, so no tracing interceptor
    closers: list[Callable[[], None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped: threading.Event = field(default_factory=threading.Event)

    async def set_health(self, status: int) -> None:
        """Set every readiness entry ("" and each service) to `status`."""
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def watch_health(self) -> None:
        """Follow database reachability until stopped (the probe blocks, so it runs on a thread)."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            ok = await loop.run_in_executor(None, self.probe)
            if not self._stopping.is_set():
                await self.set_health(SERVING if ok else NOT_SERVING)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def _drain(self) -> None:
        self._stopping.set()
        await self.health.enter_graceful_shutdown()
        log.info("draining", extra={"grace_seconds": self.grace})
        await self.server.stop(self.grace)

    def stop(self) -> None:
        """Turn NOT_SERVING first, then refuse new calls and let in-flight ones finish."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result()
        for close in self.closers:
            close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        log.info("stopped")


def _credentials(settings: CommonSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _millis(seconds: float) -> int:
    """A duration for a grpc channel argument (int milliseconds, capped at INT_MAX: no limit)."""
    return min(int(seconds * 1000), 2**31 - 1)


async def _start(
    settings: CommonSettings,
    port: int,
    services: Sequence[Service],
    interceptors: Sequence[Interceptor],
) -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
    limit = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # a second instance on a port in use must fail, not take half the connections; only
            # the PROCESSES of one instance share it (payments_common.processes checks it is free)
            ("grpc.so_reuseport", int(settings.processes > 1)),
            # per connection: streams beyond this are refused (REFUSED_STREAM; grpc clients wait
            # for a free one), and core counts a reset stream until it is freed, so a rapid reset
            # cannot run more than this many calls of one connection at once
            ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
            # soft = hard: no random refusals between 8 and 16 KiB (the hard limit holds only
            # once the client has acknowledged SETTINGS: tests/README.md, transport, 11)
            ("grpc.max_metadata_size", settings.grpc_max_metadata_bytes),
            ("grpc.absolute_max_metadata_size", settings.grpc_max_metadata_bytes),
            # a connection without calls is closed (GOAWAY); answers stuck behind a client's
            # zero flow-control window do not count as calls, so they are dropped then too
            ("grpc.max_connection_idle_ms", _millis(settings.grpc_max_connection_idle_seconds)),
            # clients reconnect (and re-resolve) now and then, so load spreads over new replicas
            ("grpc.max_connection_age_ms", _millis(settings.grpc_max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _millis(settings.shutdown_grace_seconds)),
        ],
    )
    health_servicer = health_aio.HealthServicer()  # "" starts SERVING: not ready before the first probe
    names = [s.name for s in services]
    for name in ["", *names]:
        await health_servicer.set(name, NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.register(server)
    if settings.reflection_enabled:
        reflection.enable(server, [*names, health.SERVICE_NAME])
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
        raise StartupError(f"start-up error: cannot listen on {address} (port in use?)") from None
    await server.start()
    await health_servicer.set(LIVENESS, SERVING)
    return server, bound, health_servicer


def start_server(
    settings: CommonSettings,
    port: int,
    services: Sequence[Service],
    interceptors: Sequence[Interceptor],
    probe: Callable[[], bool],
    metrics_port: int | None = None,
) -> RunningServer:
    """Start a server with the services, health, (unless disabled) reflection, metrics and tracing."""
    traced = tracing_for(settings)  # outermost, so that every interceptor runs inside the span
    if traced is not None:
        interceptors = [traced.interceptor, *interceptors]
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-loop", daemon=True)
    thread.start()
    try:
        server, bound, health_servicer = asyncio.run_coroutine_threadsafe(
            _start(settings, port, services, interceptors), loop
        ).result()
    except StartupError as err:
        loop.call_soon_threadsafe(loop.stop)
        raise SystemExit(str(err)) from None
    running = RunningServer(
        server=server,
        port=bound,
        health=health_servicer,
        service_names=[s.name for s in services],
        probe=probe,
        interval=settings.health_check_interval_seconds,
        grace=settings.shutdown_grace_seconds,
        loop=loop,
        thread=thread,
        metrics_port=metrics.serve(metrics_port),
        tracing=traced,
        closers=[traced.shutdown] if traced else [],
    )
    asyncio.run_coroutine_threadsafe(running.set_health(SERVING if probe() else NOT_SERVING), loop).result()
    asyncio.run_coroutine_threadsafe(running.watch_health(), loop)
    return running


def serve_until_signalled(running: RunningServer) -> None:
    """Block until SIGTERM/SIGINT, then drain gracefully (closers release the pool).

    The wait has a timeout on purpose. CPython runs a Python signal handler only on the main
    thread, when that thread next runs bytecode; the kernel may hand a process-wide signal to any
    thread. When two arrive together (Ctrl-C under `make run`: the terminal's SIGINT reaches every
    process of the group and the dev runner adds a SIGTERM), the second lands on another thread,
    because the main one already has a signal pending, and that thread may take both off the
    queue. An untimed wait of the main thread is then resumed, not interrupted, and the handler
    would never run: the service hung until it was killed.
    """
    done = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    while not done.wait(SIGNAL_POLL_SECONDS):  # each timeout returns to bytecode: handlers run
        pass
    running.stop()
    # drained: a late second signal (the runner's SIGTERM after the terminal's SIGINT) must not
    # kill the exiting process (CPython restores the default handlers while it finalizes)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
