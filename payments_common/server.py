"""Server bootstrap shared by both services: `grpc.aio` on uvloop, health, reflection, TLS, drain.

Each call is a coroutine on one event loop, so a call that has sent its headers and no message
holds no thread; database work runs on a bounded thread pool (`Offload`). The loop runs on a
thread of its own, so `start_server` returns a handle that plain (synchronous) code, the tests
and the signal handler of `serve_until_signalled`, can stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from payments_common import metrics
from payments_common.config import CommonSettings

log = logging.getLogger("payments.server")
# "liveness" stays SERVING while the process works (a database outage must not restart pods);
# "" and each service name follow database reachability (readiness).
LIVENESS = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
P = ParamSpec("P")
if TYPE_CHECKING:
    Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Interceptor = grpc.aio.ServerInterceptor
T = TypeVar("T")


class Offload:
    """The bounded thread pool that runs blocking work (psycopg2, hashing) for the coroutines.

    The caller's context variables (the verified principal, the call record) are copied along.
    """

    def __init__(self, workers: int, name: str = "db"):
        self._pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on the pool and await its result."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        """Finish queued work and stop the threads."""
        self._pool.shutdown(wait=True)


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
            # a second instance on a port in use must fail, not take half the connections
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health_aio.HealthServicer()
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
    """Start a server with the services, health, (unless disabled) reflection and metrics."""
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
    )
    asyncio.run_coroutine_threadsafe(running.set_health(SERVING if probe() else NOT_SERVING), loop).result()
    asyncio.run_coroutine_threadsafe(running.watch_health(), loop)
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
