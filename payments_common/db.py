"""The one database executor of both services: literal SQL, prepared once per connection.

SQLAlchemy provides the engine (its pool, its psycopg2 dialect); statements are SQL text with
named `%(name)s` parameters, kept in each service's `sql` module. A use case picks its scope:

- `db.transaction()`: several statements, atomic. `BEGIN` travels with the first statement.
- `db.statement()`: exactly one write, committed by itself (no BEGIN/COMMIT round trips); a second
  write inside the scope is refused, so nobody adds a non-atomic write by accident.

Connections stay in autocommit mode; a scope that fails rolls back what it began. Each statement
is `PREPARE`d on first use per pooled connection and then sent as `EXECUTE` (PostgreSQL shares the
2 cores with the services: planning the same insert on every call costs it CPU); a reconnected
connection starts with nothing prepared. Driver errors become the domain errors of SPEC §4 here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.pool import PoolProxiedConnection

from payments_common import dsn, errors
from payments_common.config import CommonSettings
from payments_common.session import Row, Session

__all__ = ["Database", "Row", "Session", "database_for", "driver_url", "make_engine"]

# A pooled connection idle for longer than this is pinged before use (only where a ping can help:
# a busy pool would pay a round trip per call for nothing).
IDLE_PING_SECONDS = 1.0
_RETURNED_AT, _CONNECTED_AT = "payments.returned_at", "payments.connected_at"


def driver_url(url: str) -> str:
    """Pin the psycopg2 driver (SQLAlchemy 2.1 defaults `postgresql://` to psycopg 3).

    A libpq multi-host URL (`h1:p1,h2:p2`) becomes SQLAlchemy's `host=` form (`payments_common.dsn`).
    """
    url = dsn.sqlalchemy_url(url)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class Database:
    """A bounded pool of psycopg2 connections and the two scopes a use case may run in."""

    def __init__(self, engine: Engine, *, default_timeout_ms: int | None = None, prepare: bool = True):
        self.engine = engine
        self._prepare = prepare
        self._default_timeout_ms = default_timeout_ms
        self._lost_at = float("-inf")
        event.listen(engine.pool, "connect", self._connected)
        event.listen(engine.pool, "checkin", self._returned)
        event.listen(engine.pool, "checkout", self._check_out)

    @staticmethod
    def _connected(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.autocommit = True  # scopes send BEGIN themselves, and only when needed
        record.info[_CONNECTED_AT] = time.monotonic()

    @staticmethod
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def _check_out(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # After a lost connection every older one is suspect (a failover replaced the server):
        # InvalidatePoolError makes the pool replace them all, then retry the checkout.
        if record.info.get(_CONNECTED_AT, 0.0) <= self._lost_at:
            raise exc.InvalidatePoolError()
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except psycopg2.Error as err:
            raise exc.InvalidatePoolError() from err

    def _budget(self, timeout_ms: int | None) -> str:
        """`SET LOCAL statement_timeout` when the call's budget is below the connection default."""
        if timeout_ms is None:
            return ""
        budget = max(int(timeout_ms), 1)
        if self._default_timeout_ms is not None and budget >= self._default_timeout_ms:
            return ""
        return f"SET LOCAL statement_timeout = {budget}; "

    @contextmanager
    def _checkout(self) -> Iterator[PoolProxiedConnection]:
        try:
            connection = self.engine.raw_connection()
        except exc.TimeoutError:
            raise errors.Unavailable("the database is overloaded; retry", retry_after=1.0) from None
        except (exc.DBAPIError, psycopg2.Error):
            self._lost_at = time.monotonic()
            raise errors.Unavailable("the database is unreachable; retry", retry_after=1.0) from None
        try:
            yield connection
        finally:
            connection.close()  # back to the pool (or discarded, if invalidated)

    @contextmanager
    def transaction(self, timeout_ms: int | None = None) -> Iterator[Session]:
        """Several statements, committed together on success and rolled back on any error.

        `timeout_ms` bounds every statement (the caller's remaining deadline), so an abandoned
        call does not keep working in the database.
        """
        with self._checkout() as connection:
            session = Session(
                connection, self.translate, self._prepare, "BEGIN; " + self._budget(timeout_ms), single=False
            )
            try:
                yield session
            except BaseException:
                self._end(connection, "ROLLBACK", quiet=True)
                raise
            if session.started:
                self._end(connection, "COMMIT", quiet=False)

    @contextmanager
    def statement(self, timeout_ms: int | None = None) -> Iterator[Session]:
        """At most one write, atomic on its own: no BEGIN or COMMIT round trips.

        Reads before or after it each see a fresh snapshot, as they would in READ COMMITTED. With
        a budget below the default timeout, `SET LOCAL` and the statement share one implicit
        transaction (one query string, one round trip).
        """
        with self._checkout() as connection:
            yield Session(connection, self.translate, self._prepare, self._budget(timeout_ms), single=True)

    def _end(self, connection: PoolProxiedConnection, command: str, *, quiet: bool) -> None:
        driver = cast(psycopg2.extensions.connection | None, connection.dbapi_connection)
        if driver is None or driver.closed:
            return
        status = driver.info.transaction_status
        if quiet and status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            return
        if not quiet and status == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
            # a failed statement whose error was caught: COMMIT would quietly roll back
            self._end(connection, "ROLLBACK", quiet=True)
            raise RuntimeError("a statement of this transaction failed; it was rolled back")
        try:
            with driver.cursor() as cursor:
                cursor.execute(command)
        except psycopg2.Error as err:
            if quiet:  # the error being raised matters more; never reuse this connection
                connection.invalidate(err)
                return
            mapped = self.translate(err, connection)
            if mapped is err:
                raise
            raise mapped from err

    def translate(self, err: psycopg2.Error, connection: PoolProxiedConnection | None) -> Exception:
        """The domain error of a driver failure; a lost connection is invalidated first."""
        if isinstance(err, psycopg2.errors.QueryCanceled):
            return errors.DeadlineExceeded("the deadline passed; the database work was cancelled")
        if isinstance(err, psycopg2.errors.SerializationFailure | psycopg2.errors.DeadlockDetected):
            return errors.Aborted("concurrent update conflict; retry", reason="CONCURRENT_UPDATE")
        if isinstance(err, psycopg2.errors.LockNotAvailable):
            return errors.Aborted("the record is busy; retry", reason="LOCK_TIMEOUT")
        driver = connection.dbapi_connection if connection is not None else None
        if isinstance(err, psycopg2.OperationalError | psycopg2.InterfaceError) or (
            # e.g. a DatabaseError "server closed the connection unexpectedly": the dialect knows them
            self.engine.dialect.is_disconnect(err, driver, None)  # type: ignore[arg-type]
            # a standby reached through a connection made before a failover demoted its server
            or isinstance(err, psycopg2.errors.ReadOnlySqlTransaction)
        ):
            self._lost_at = time.monotonic()
            if connection is not None:
                connection.invalidate(err)
            return errors.Unavailable("the database is unreachable; retry", retry_after=1.0)
        return err  # a bug (a constraint the code should have checked first): INTERNAL

    def ping(self) -> bool:
        """True when the database answers a trivial query within the pool timeout."""
        try:
            with self.statement() as session:
                session.rows("SELECT 1")
            return True
        except (errors.DomainError, psycopg2.Error):
            return False

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


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

    `statement_timeout_ms` becomes every connection's default, so a call whose budget is not
    shorter sends no `SET LOCAL`.
    """
    options = "-c lock_timeout=3000"
    if role:
        options += f" -c role={role}"
    if statement_timeout_ms is not None:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    return create_engine(
        driver_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        pool_reset_on_return=None,  # autocommit connections: scopes end their own transactions
        connect_args={"connect_timeout": 3, "application_name": name, "options": options},
    )


def database_for(settings: CommonSettings, name: str) -> Database:
    """The executor a service builds from its settings (`name` shows in pg_stat_activity)."""
    if settings.database_url is None:
        raise ValueError("DATABASE_URL is required")
    engine = make_engine(
        settings.database_url.get_secret_value(),
        role=settings.database_role,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_seconds,
        name=name,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    return Database(
        engine, default_timeout_ms=settings.db_statement_timeout_ms, prepare=settings.db_prepared_statements
    )
