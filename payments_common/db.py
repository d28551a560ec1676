"""Engine and unit of work: one database session per use case, bounded by the caller's deadline."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import psycopg2.errors
from sqlalchemy import Connection, Engine, create_engine, event, exc, text

from payments_common import errors
from payments_common.config import CommonSettings

# A pooled connection idle for longer than this is pinged before use (a pre-ping only where one
# can help: a busy pool would pay a round trip per unit of work for nothing). A connection that
# breaks while in use fails that call with UNAVAILABLE and invalidates the whole pool.
IDLE_PING_SECONDS = 1.0
_RETURNED_AT = "payments.returned_at"
_DEFAULT_TIMEOUT_MS = "payments.statement_timeout_ms"


def driver_url(url: str) -> str:
    """Pin the psycopg2 driver (SQLAlchemy 2.1 defaults `postgresql://` to psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def engine_for(settings: CommonSettings, name: str) -> Engine:
    """The engine a service builds from its settings (`name` shows in pg_stat_activity)."""
    if settings.database_url is None:
        raise ValueError("DATABASE_URL is required")
    return make_engine(
        settings.database_url.get_secret_value(),
        role=settings.database_role,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_seconds,
        name=name,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


def make_engine(
    url: str,
    *,
    role: str | None,
    pool_size: int,
    pool_timeout: float,
    name: str,
    statement_timeout_ms: int | None = None,
) -> Engine:
    """An engine with a bounded pool; `role` is assumed at connect time (least privilege).

    `statement_timeout_ms` becomes every connection's default statement timeout, so a unit of
    work whose budget is not shorter needs no `SET LOCAL` round trip.
    """
    options = "-c lock_timeout=3000"
    if role:
        options += f" -c role={role}"
    if statement_timeout_ms is not None:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    engine = create_engine(
        driver_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        connect_args={"connect_timeout": 3, "application_name": name, "options": options},
    )

    @event.listens_for(engine.pool, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        if statement_timeout_ms is not None:
            record.info[_DEFAULT_TIMEOUT_MS] = int(statement_timeout_ms)

    @event.listens_for(engine.pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as err:
            # like pool_pre_ping: this and every older pooled connection is replaced
            raise exc.InvalidatePoolError() from err

    return engine


@contextmanager
def unit_of_work(engine: Engine, timeout_ms: int | None = None) -> Iterator[Connection]:
    """One database transaction: committed on success, rolled back on any error.

    A Core connection, not an ORM session: the services map rows themselves, and the
    session's bookkeeping was measurable on every call.

    `timeout_ms` bounds every statement (the remaining call deadline), so an
    abandoned call does not keep working in the database.
    """
    with engine.begin() as connection:
        budget = _shorter_budget(connection, timeout_ms)
        if budget is not None:
            connection.execute(text(f"SET LOCAL statement_timeout = {budget}"))
        yield connection


def _shorter_budget(connection: Connection, timeout_ms: int | None) -> int | None:
    """The call's statement budget in ms when it is below the connection's default timeout."""
    if timeout_ms is None:
        return None
    budget = max(int(timeout_ms), 1)
    return budget if budget < connection.info.get(_DEFAULT_TIMEOUT_MS, math.inf) else None


@contextmanager
def autocommit(engine: Engine, timeout_ms: int | None = None) -> Iterator[Connection]:
    """For a use case whose only write is one statement: every statement commits by itself.

    A single statement is atomic on its own, so this spares the BEGIN and COMMIT round trips of
    `unit_of_work` (reads that follow see a fresh snapshot, as they would in READ COMMITTED).
    A call whose budget is shorter than the default statement timeout runs in a transaction
    after all, because `SET LOCAL statement_timeout` needs one.
    """
    with engine.connect() as connection:
        budget = _shorter_budget(connection, timeout_ms)
        if budget is not None:
            with connection.begin():
                connection.execute(text(f"SET LOCAL statement_timeout = {budget}"))
                yield connection
            return
        # the driver's autocommit flag, set and cleared by hand: SQLAlchemy's isolation_level
        # option resets it at check-in with a call that raises when the server has gone away
        driver = connection.connection.dbapi_connection
        assert driver is not None
        try:
            driver.autocommit = True
        except psycopg2.Error as err:  # closed under us: like any lost connection, UNAVAILABLE
            connection.invalidate()
            raise exc.OperationalError("autocommit", None, err, connection_invalidated=True) from err
        try:
            yield connection
        finally:
            with contextlib.suppress(psycopg2.Error):  # a broken connection is invalidated anyway
                driver.autocommit = False


def fetch(connection: Connection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run SQL text compiled ahead of time on the driver's cursor; the rows as plain tuples.

    The hot path of the services: no statement building, compiling or result wrapping. A failure
    is raised as SQLAlchemy would raise it (a `DBAPIError` subclass carrying the driver error,
    which `translate` maps), and a lost connection is invalidated so the pool replaces it.
    """
    driver = connection.connection
    cursor = driver.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except psycopg2.Error as err:
        lost = connection.dialect.is_disconnect(cast(Any, err), driver.dbapi_connection, cursor)
        if lost:
            connection.invalidate(err)
        raise exc.DBAPIError.instance(
            sql, dict(params), err, psycopg2.Error, connection_invalidated=lost, dialect=connection.dialect
        ) from err
    finally:
        cursor.close()


def translate(err: exc.SQLAlchemyError) -> errors.DomainError | None:
    """Map database failures that are not bugs onto the canonical gRPC errors."""
    original = getattr(err, "orig", None)
    if isinstance(original, psycopg2.errors.QueryCanceled):
        return errors.DeadlineExceeded("the deadline passed; the database work was cancelled")
    if isinstance(original, psycopg2.errors.SerializationFailure | psycopg2.errors.DeadlockDetected):
        return errors.Aborted("concurrent update conflict; retry", reason="CONCURRENT_UPDATE")
    if isinstance(original, psycopg2.errors.LockNotAvailable):
        return errors.Aborted("the record is busy; retry", reason="LOCK_TIMEOUT")
    if isinstance(err, exc.TimeoutError):
        return errors.Unavailable("the database is overloaded; retry", retry_after=1.0)
    if isinstance(err, exc.OperationalError | exc.InterfaceError) or (
        isinstance(err, exc.DBAPIError) and err.connection_invalidated
    ):
        return errors.Unavailable("the database is unreachable; retry", retry_after=1.0)
    return None


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query within the pool timeout."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except exc.SQLAlchemyError:
        return False
