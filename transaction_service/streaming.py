"""Wiring of the change stream: the reader's own thread and connections, the hub, the watches.

The reader (`hub.Hub`) runs its reads on one thread and one pooled connection of its own, and
LISTENs on a further connection, so a busy service never makes it wait for the unary calls'
threads or connections, nor the reverse. A watch's own statements (its start, its catch-up) are
calls like the others, on the service's pool.

Draining: the server ends every watch with UNAVAILABLE before it stops accepting calls and lets
the others finish. `payments_common.server` has no drain hook yet, so `attach` wraps the
handle's `stop`; the hook it stands in for is "awaitables run on the loop at the start of
`RunningServer._drain`".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from payments_common import db
from payments_common.config import TransactionSettings
from payments_common.server import Offload, RunningServer
from transaction_service.feed import PostgresFeed
from transaction_service.hub import Hub
from transaction_service.listener import connector
from transaction_service.resume import ResumeTokens
from transaction_service.watch import Watches

DRAIN_WAIT_SECONDS = 2.0  # how long stop() waits for the ended watches to send their status


@dataclass
class ChangeStream:
    """The parts of one process's change stream."""

    watches: Watches
    hub: Hub
    reader_offload: Offload
    reader_db: db.Database


def build(settings: TransactionSettings, database: db.Database, offload: Offload) -> ChangeStream:
    """The change stream of a service whose calls run on `database` and `offload`."""
    assert settings.database_url is not None  # checked at start-up
    engine = db.make_engine(
        settings.database_url.get_secret_value(),
        role=settings.database_role,
        pool_size=1,
        pool_timeout=settings.db_pool_timeout_seconds,
        name="transaction_service.watch",
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    reader_db = db.Database(
        engine, default_timeout_ms=settings.db_statement_timeout_ms, prepare=settings.db_prepared_statements
    )
    reader_offload = Offload(1, "watch")
    hub = Hub(
        PostgresFeed(reader_db),
        reader_offload,
        connector(engine, settings.database_role, "transaction_service.listen"),
        poll_seconds=settings.watch_poll_interval_seconds,
        account_check_seconds=settings.watch_account_check_seconds,
    )
    secret = settings.page_token_key.get_secret_value().encode() if settings.page_token_key else None
    tokens = ResumeTokens(secret, settings.watch_retention_seconds)
    watches = Watches(PostgresFeed(database), hub, tokens, offload, settings.watch_limit)
    return ChangeStream(watches, hub, reader_offload, reader_db)


def attach(running: RunningServer, stream: ChangeStream) -> None:
    """End the watches first when `running` stops; close the reader with the server's closers."""
    stop = running.stop

    def stop_after_ending_watches() -> None:
        if running.loop.is_running():
            asyncio.run_coroutine_threadsafe(_end_watches(stream.watches), running.loop).result(
                timeout=DRAIN_WAIT_SECONDS + 1
            )
        stop()

    running.stop = stop_after_ending_watches  # type: ignore[method-assign]  # see the module docstring

    def close_reader() -> None:
        if running.loop.is_running():
            asyncio.run_coroutine_threadsafe(stream.hub.close(), running.loop).result(timeout=10)
        stream.reader_offload.shutdown()
        stream.reader_db.dispose()

    running.closers.append(close_reader)


async def _end_watches(watches: Watches) -> None:
    watches.drain()
    deadline = time.monotonic() + DRAIN_WAIT_SECONDS
    while watches.open and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
