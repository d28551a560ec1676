"""`python -m payments_common.schema [--wait SECONDS]`: is the database schema at this build's head?

Each Kubernetes pod runs it as its init container (deploy/kubernetes), so a service cannot start,
nor turn ready, before the migration Job of its release has brought the schema to the head
revision of the migrations shipped in the same image: a skipped or failed migration shows as pods
waiting in `Init`, not as errors on calls. It connects as the service does (`DATABASE_URL`,
`DATABASE_ROLE`); the migrations let the service roles read the version table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from payments_common.config import CommonSettings, load_settings
from payments_common.db import make_engine

VERSIONS = "SELECT version_num FROM public.alembic_version"


def head_revisions(config: Path) -> set[str]:
    """The head revision(s) of the migrations next to `config` (alembic.ini)."""
    return set(ScriptDirectory.from_config(Config(str(config))).get_heads())


def current_revisions(settings: CommonSettings) -> set[str] | str:
    """The revisions the database is at, or why they cannot be read (one line)."""
    if settings.database_url is None:
        return "DATABASE_URL: required"
    engine = make_engine(
        settings.database_url.get_secret_value(),
        role=settings.database_role,
        pool_size=1,
        pool_timeout=5,
        name="schema-check",
    )
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.execute(text(VERSIONS))}
    except SQLAlchemyError as err:
        reason = getattr(err, "orig", None) or err  # the driver's own words, without SQLAlchemy's
        return str(reason).strip().splitlines()[0]
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Exit 0 once the schema is at head; with --wait, poll until then or the time is up (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m payments_common.schema", description=__doc__)
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="poll this long")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--config", type=Path, default=Path("alembic.ini"), help="alembic.ini of the build")
    args = parser.parse_args(argv)
    settings = load_settings(CommonSettings)
    heads = head_revisions(args.config)
    deadline = time.monotonic() + args.wait
    while True:
        current = current_revisions(settings)
        if current == heads:
            print(f"schema at head {', '.join(sorted(heads))}", flush=True)
            return 0
        seen = current if isinstance(current, str) else ", ".join(sorted(current)) or "no revision"
        print(
            f"waiting for migrations: database at {seen}, this build needs {', '.join(sorted(heads))}",
            flush=True,
        )
        if time.monotonic() + args.interval > deadline:
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
