"""The benchmark's PostgreSQL: embedded (or BENCH_DATABASE_URL), migrated, seeded in bulk."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, pool, text

from bench import ROOT
from payments_common import embedded
from transaction_service import sql

# The bulk seed has no counterpart among the service's statements (it writes status and times the
# service never sets); its columns are those of `sql.TRANSACTION_FIELDS` it gives a value, in that
# order, and the rest take the table's defaults.
_SEEDED = {
    "user_id": "CAST(:uid AS uuid)",
    "type": "'PAYMENT'",
    "status": ":status",
    "amount_minor": "100 + g",
    "currency": "'EUR'",
    "description": "'seeded'",
    "metadata": """'{"seed": "1"}'::jsonb""",
    "idempotency_key": ":prefix || g",
    "request_fingerprint": "sha256(convert_to(:prefix || g, 'UTF8'))",
    "created_at": "now() - make_interval(secs => g)",
    "updated_at": "now() - make_interval(secs => g)",
}
if not set(_SEEDED) <= set(sql.TRANSACTION_FIELDS):
    raise RuntimeError(
        f"seeded columns that are not transaction fields: {set(_SEEDED) - set(sql.TRANSACTION_FIELDS)}"
    )
_SEED_COLUMNS = [name for name in sql.TRANSACTION_FIELDS if name in _SEEDED]
SEED = (
    f"INSERT INTO payments.transactions ({', '.join(_SEED_COLUMNS)})\n"
    f"SELECT {', '.join(_SEEDED[name] for name in _SEED_COLUMNS)}\n"
    "FROM generate_series(1, :n) AS g"
)


@dataclass
class Database:
    """A superuser URL of a fresh, migrated database; `postmaster` is known for embedded servers."""

    url: str
    postmaster: int | None
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def engine(self) -> Engine:
        return create_engine(self.url, poolclass=pool.NullPool)

    def server_version(self) -> str:
        engine = self.engine()
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar())
        engine.dispose()
        return version

    def close(self) -> None:
        for step in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                step()


def start_database(workdir: Path) -> Database:
    """BENCH_DATABASE_URL (a superuser URL; a scratch database is created and dropped) or embedded."""
    external = os.environ.get("BENCH_DATABASE_URL")
    if external:
        name = f"payments_bench_{uuid.uuid4().hex[:8]}"
        embedded.ensure_database(external, name)
        database = Database(embedded.with_database(external, name), None)

        def drop() -> None:
            admin = create_engine(external, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        database.cleanup.append(drop)
    else:
        data = workdir / "pgdata"
        url = embedded.start(data, "payments", delete_on_exit=True)
        pid_file = data / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        database = Database(url, postmaster)
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database.url},
        check=True,
        capture_output=True,
    )
    return database


def seed_transactions(
    engine: Engine, user_id: str, count: int, status: str = "COMPLETED", returning: bool = True
) -> list[str]:
    """`count` rows for one user in a single INSERT ... SELECT generate_series (as superuser).

    No creation events are written: no constraint needs them and no benchmarked read uses them.
    """
    prefix = f"seed-{status.lower()}-{uuid.uuid4().hex[:6]}-"
    statement = text(SEED + " RETURNING id") if returning else text(SEED)
    with engine.begin() as conn:
        result = conn.execute(statement, {"uid": user_id, "status": status, "prefix": prefix, "n": count})
        return [str(r[0]) for r in result] if returning else []


def analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE payments.transactions"))
