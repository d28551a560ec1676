"""Alembic environment: migrates the database named by DATABASE_URL (or -x url=...)."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text

from payments_common.db import driver_url

url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DATABASE_URL")
if not url:
    raise SystemExit("configuration error: DATABASE_URL: required to run migrations")

# Optional: give the service roles LOGIN with these passwords (docker compose does; a production
# DBA may instead manage the roles' logins outside the migrations).
ROLE_PASSWORDS = {"payments_auth_svc": "AUTH_DB_PASSWORD", "payments_tx_svc": "TRANSACTION_DB_PASSWORD"}

GRANT_VERSION_READ = f"""
DO $$
DECLARE role_name text;
BEGIN
  IF EXISTS (SELECT FROM pg_tables WHERE schemaname = 'public' AND tablename = 'alembic_version'
             AND (tableowner = current_user OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)))
  THEN
    FOREACH role_name IN ARRAY ARRAY[{", ".join(f"'{r}'" for r in ROLE_PASSWORDS)}] LOOP
      IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
        EXECUTE format('GRANT SELECT ON public.alembic_version TO %I', role_name);
      END IF;
    END LOOP;
  END IF;
END $$
"""

engine = create_engine(driver_url(url), poolclass=pool.NullPool)
with engine.connect() as connection:
    # the version table lives in public so that both schemas can be dropped and recreated
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    # The services' pods wait until the schema is at head (payments_common.schema), reading the
    # version table as their own roles: let them, where those roles exist and we own the table.
    connection.execute(text(GRANT_VERSION_READ))
    connection.commit()
    for role, variable in ROLE_PASSWORDS.items():
        password = os.environ.get(variable)
        if password:
            statement = connection.execute(
                text("SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :role, :password)"),
                {"role": role, "password": password},
            ).scalar_one()
            connection.exec_driver_sql(statement)
            connection.commit()
engine.dispose()
