"""Engine and unit of work: one database session per use case, bounded by the caller's deadline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2.errors
from sqlalchemy import Engine, create_engine, exc, text
from sqlalchemy.orm import Session

from payments_common import errors


def driver_url(url: str) -> str:
    """Pin the psycopg2 driver (SQLAlchemy 2.1 defaults `postgresql://` to psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, role: str | None, pool_size: int, pool_timeout: float, name: str) -> Engine:
    """An engine with a bounded pool; `role` is assumed at connect time (least privilege)."""
    options = "-c lock_timeout=3000"
    if role:
        options += f" -c role={role}"
    return create_engine(
        driver_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 3, "application_name": name, "options": options},
    )


@contextmanager
def unit_of_work(engine: Engine, timeout_ms: int | None = None) -> Iterator[Session]:
    """A session in one database transaction: committed on success, rolled back on any error.

    `timeout_ms` bounds every statement (the remaining call deadline), so an
    abandoned call does not keep working in the database.
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if timeout_ms is not None:
            session.execute(text(f"SET LOCAL statement_timeout = {max(int(timeout_ms), 1)}"))
        yield session


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
