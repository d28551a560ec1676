"""`python -m transaction_service.processing`: the worker and its webhook endpoint until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading

import uvicorn

from payments_common import db, logs, metrics
from payments_common.config import load_settings
from payments_common.offload import Offload
from transaction_service import listener
from transaction_service.connectors.sandbox import SandboxConfig, SandboxConnector
from transaction_service.processing.flow import Flow
from transaction_service.processing.settings import ProcessingSettings
from transaction_service.processing.store import ProcessingStore
from transaction_service.processing.web import build_app
from transaction_service.processing.worker import Worker

NAME = "transaction_processing"
log = logging.getLogger("transaction_service.processing")
# SIGTERM/SIGINT outside uvicorn's own handlers (while starting, or after its drain): noted here
STOP_REQUESTED = threading.Event()


async def _stop_when_requested(server: uvicorn.Server) -> None:
    """A signal that came before uvicorn took the handlers over still stops the server."""
    while not STOP_REQUESTED.is_set():
        await asyncio.sleep(0.1)
    server.should_exit = True


async def serve(settings: ProcessingSettings) -> int:
    """Run the worker and the webhook endpoint; a drained stop returns 0."""
    database = db.database_for(settings, NAME)
    offload = Offload(settings.submit_concurrency + 4, "processing")
    connector = SandboxConnector(
        SandboxConfig(
            str(settings.processor_url).rstrip("/"),
            settings.processor_api_key,
            settings.processor_webhook_secret,
            timeout_seconds=settings.processor_timeout_seconds,
            replay_window_seconds=settings.webhook_replay_window_seconds,
        )
    )
    store = ProcessingStore(database, settings.payment_processor)
    flow = Flow(
        store,
        connector,
        offload,
        reconcile_after_seconds=settings.reconcile_after_seconds,
        give_up_seconds=settings.reconcile_give_up_seconds,
    )
    worker = Worker(
        flow,
        store,
        offload,
        listener.connector(database.engine, settings.database_role, f"{NAME}_listen"),
        batch=settings.submit_batch,
        concurrency=settings.submit_concurrency,
        lease_seconds=settings.submit_lease_seconds,
        poll_seconds=settings.submit_poll_seconds,
    )
    metrics.serve(settings.processing_metrics_port)
    config = uvicorn.Config(
        build_app(flow, settings.payment_processor, lambda: worker.healthy),
        host=settings.webhook_host,
        port=settings.webhook_port,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    work = asyncio.create_task(worker.run(stop))
    watcher = asyncio.create_task(_stop_when_requested(server))
    log.info(
        "processing worker started",
        extra={"processor": settings.payment_processor, "webhook_port": settings.webhook_port},
    )
    try:
        await server.serve()
    finally:
        watcher.cancel()
        stop.set()
        await work
        await connector.aclose()
        offload.shutdown()
        database.dispose()
    return 0 if server.started else 1


def main() -> None:
    """Load settings (one clear line on error), then serve until signalled."""
    settings = load_settings(ProcessingSettings)
    if settings.database_url is None:
        print("configuration error: DATABASE_URL: not set", file=sys.stderr)
        raise SystemExit(2)
    logs.configure(settings.log_level, NAME)
    # uvicorn drains on SIGTERM/SIGINT and then raises the signal again under the handlers it
    # found: these make a drained stop exit 0, and a signal before uvicorn serves stop it too
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda _signum, _frame: STOP_REQUESTED.set())
    raise SystemExit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
