"""`LISTEN payments_transaction_events` on a connection of its own, driven by the event loop.

The notification is only a hint that the outbox grew (the reader polls as well), so nothing is
lost when one is missed. The connection is not from the pool (it stays open for as long as
anybody watches) and never blocks the loop: the loop watches its socket (`add_reader`) and
`poll()` only consumes what has arrived (libpq keeps the socket non-blocking). Connecting, which
does block, runs on the reader's own thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions
from sqlalchemy import Engine

from payments_common.server import Offload

log = logging.getLogger("payments.watch")
CHANNEL = "payments_transaction_events"  # migration 0005's trigger notifies it
Connect = Callable[[], psycopg2.extensions.connection]


def connector(engine: Engine, role: str | None, name: str) -> Connect:
    """Open a connection like the engine's (same server, user and role), outside its pool."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    options: dict[str, Any] = {"connect_timeout": 3, "application_name": name}
    if role:
        options["options"] = f"-c role={role}"

    def connect() -> psycopg2.extensions.connection:
        connection: psycopg2.extensions.connection = psycopg2.connect(*cargs, **{**cparams, **options})
        return connection

    return connect


class Listener:
    """One LISTEN connection: `on_notify` on each batch of notifications, `on_lost` once if it breaks."""

    def __init__(
        self, connect: Connect, offload: Offload, on_notify: Callable[[], None], on_lost: Callable[[], None]
    ):
        self._connect = connect
        self._offload = offload
        self._on_notify = on_notify
        self._on_lost = on_lost
        self._connection: psycopg2.extensions.connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._failing = False

    @property
    def open(self) -> bool:
        """True while listening."""
        return self._connection is not None

    async def start(self) -> bool:
        """Connect and LISTEN; False (and logged) when the database cannot be reached."""
        try:
            connection = await self._offload(self._listen)
        except psycopg2.Error as err:
            if not self._failing:  # once per outage, not once per retry
                log.warning("cannot LISTEN for changes; polling only", extra={"error": type(err).__name__})
            self._failing = True
            return False
        self._failing = False
        self._loop, self._connection, self._fd = asyncio.get_running_loop(), connection, connection.fileno()
        self._loop.add_reader(self._fd, self._readable)
        return True

    def _listen(self) -> psycopg2.extensions.connection:
        connection = self._connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
        except psycopg2.Error:
            connection.close()
            raise
        return connection

    def _readable(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            connection.poll()
        except psycopg2.Error:
            self.close()
            self._on_lost()
            return
        if connection.notifies:
            connection.notifies.clear()
            self._on_notify()

    def close(self) -> None:
        """Stop listening and close the connection (idempotent)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        connection.close()
