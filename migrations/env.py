"""Alembic environment: migrates the database named by DATABASE_URL (or -x url=...)."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from payments_common.db import driver_url

url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DATABASE_URL")
if not url:
    raise SystemExit("configuration error: DATABASE_URL: required to run migrations")

engine = create_engine(driver_url(url), poolclass=pool.NullPool)
with engine.connect() as connection:
    # the version table lives in public so that both schemas can be dropped and recreated
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
