"""PROCESSES server processes on one port, forked before any gRPC object exists.

One Python process serves on one core at most (the GIL). With `PROCESSES=N` the service forks N
workers that each build their own server, pool, threads and caches, and the kernel spreads incoming
connections over their listening sockets (SO_REUSEPORT), as in grpc's
`examples/python/multiprocessing`. gRPC must not be running when a process forks (its threads
and polling state do not survive `fork`), so the fork comes first: nothing but settings and
imports exist until then, and logging (a writer thread) starts in each process after it.

The parent only supervises. It reserves the port (binding it with SO_REUSEPORT, without listening,
so that port 0 names one port for every worker and nobody else takes it between the forks) after
checking that no other program holds it. SIGTERM/SIGINT is passed on to every worker, which drains
as a single process would. A worker that exits by itself stops the rest and the parent exits with
its status: the supervisor above (Kubernetes, systemd) restarts the whole service, so a half-sized
service never runs on unnoticed.

What each worker holds alone: `DB_POOL_SIZE` connections, `GRPC_MAX_WORKERS` threads,
`GRPC_MAX_CONCURRENT_RPCS` call slots, its key caches, and `/metrics` on its own port (the
configured port plus the worker's index; 0 stays "any free port"). Anything that must agree
across workers lives in the database (throttling, idempotency, signing keys) or in shared
settings (PAGE_TOKEN_KEY, which is therefore required when PROCESSES > 1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from payments_common import logs
from payments_common.config import CommonSettings

log = logging.getLogger("payments.processes")
S = TypeVar("S", bound=CommonSettings)
# how long a worker may take to drain after SIGTERM beyond SHUTDOWN_GRACE_SECONDS, then SIGKILL
STOP_MARGIN_SECONDS = 15.0


def run(settings: S, service: str, serve: Callable[[S], None], *, port_field: str, metrics_field: str) -> int:
    """Serve with `settings.processes` processes; the exit status of the service.

    `serve(settings)` runs one server until it is signalled; `port_field` and `metrics_field` name
    the settings of the gRPC and metrics ports, which each worker gets adjusted.
    """
    if settings.processes == 1:
        logs.configure(settings.log_level, service)
        serve(settings)
        return 0
    reserved = reserve_port(settings.grpc_host, getattr(settings, port_field))
    port = reserved.getsockname()[1]
    metrics: int | None = getattr(settings, metrics_field)
    workers: dict[int, int] = {}
    for index in range(settings.processes):
        own = settings.model_copy(
            update={port_field: port, metrics_field: metrics + index if metrics else metrics}
        )
        pid = os.fork()
        if pid == 0:
            # the worker: from here on a single-process service on a shared port, which exits (and
            # fails: one line for a start-up error, a traceback for a bug) as one would
            reserved.close()
            logs.configure(settings.log_level, service)
            _tag_log_records(index)
            serve(own)
            sys.exit(0)
        workers[pid] = index
    logs.configure(settings.log_level, service)
    log.info("workers started", extra={"processes": settings.processes, "port": port})
    try:
        return _supervise(workers, settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS)
    finally:
        reserved.close()


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT and not listening; refuses a port in use."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT is no user
        try:
            probe.bind(address)
        except OSError as err:
            raise SystemExit(f"start-up error: cannot listen on {host}:{port} ({err.strerror})") from None
    reserved = socket.socket(family, kind, proto)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind(address)
    return reserved


def _tag_log_records(index: int) -> None:
    """Every log line of this worker carries `"worker": index`."""
    make_record = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.worker = index
        return record

    logging.setLogRecordFactory(factory)


def _supervise(workers: dict[int, int], stop_timeout: float) -> int:
    """Wait for the workers; pass SIGTERM/SIGINT on; the first unexpected exit stops them all."""
    signalled: list[int] = []  # the handler only records: logging and kill happen in the loop
    stopping_since: float | None = None
    status = 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: signalled.append(received))
    while workers:
        if signalled and stopping_since is None:
            log.info("stopping workers", extra={"signal": signal.Signals(signalled[0]).name})
            stopping_since = time.monotonic()
            _signal_all(workers, signal.SIGTERM)
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stopping_since is not None and time.monotonic() - stopping_since > stop_timeout:
                log.error("workers did not stop in time; killing them", extra={"pids": sorted(workers)})
                _signal_all(workers, signal.SIGKILL)
            time.sleep(0.1)
            continue
        index = workers.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        code = code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says
        if code != 0:
            status = status or code
        if stopping_since is None:
            # a worker exits 0 only once signalled (a Ctrl-C reaches every process of the group)
            if code != 0:
                log.error("worker exited; stopping the others", extra={"worker": index, "status": code})
            stopping_since = time.monotonic()
            _signal_all(workers, signal.SIGTERM)
    for signum in (signal.SIGTERM, signal.SIGINT):  # stopped: a late signal must not kill the exit
        signal.signal(signum, signal.SIG_IGN)
    return status


def _signal_all(workers: dict[int, int], signum: signal.Signals) -> None:
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
