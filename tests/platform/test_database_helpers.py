"""The one executor on a real PostgreSQL: its two scopes, prepared statements and driver failures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import Engine, text

from payments_common import db
from payments_common.errors import DeadlineExceeded, Unavailable

PROBE_INSERT = "INSERT INTO helper_probe (id) VALUES (%(i)s::uuid)"


@pytest.fixture
def database(database_url: str) -> Iterator[db.Database]:
    engine = db.make_engine(
        database_url, role=None, pool_size=1, pool_timeout=2, name="helpers-test", statement_timeout_ms=5000
    )
    database = db.Database(engine, default_timeout_ms=5000)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS public.helper_probe (id uuid PRIMARY KEY)"))
    yield database
    database.dispose()


@pytest.fixture
def observer(database_url: str) -> Iterator[Engine]:
    other = db.make_engine(database_url, role=None, pool_size=1, pool_timeout=2, name="helpers-observer")
    yield other
    other.dispose()


def _count(engine: Engine, probe: uuid.UUID) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM helper_probe WHERE id = :i"), {"i": probe})
        return int(found.scalar_one())


def test_a_statement_scope_write_is_durable_at_once_and_a_failed_transaction_leaves_nothing(
    database: db.Database, observer: Engine
) -> None:
    probe, second = uuid.uuid4(), uuid.uuid4()
    with database.statement() as session:
        session.rows(PROBE_INSERT, i=probe)
        assert _count(observer, probe) == 1  # committed by the statement itself, not at the end
    with pytest.raises(RuntimeError, match="use case fails"), database.transaction() as session:
        session.rows(PROBE_INSERT, i=second)
        assert _count(observer, second) == 0  # not visible before the commit
        raise RuntimeError("the use case fails after its write")
    assert _count(observer, second) == 0
    with database.statement() as session:  # the one pooled connection is idle again, not in a transaction
        assert session.value("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in%%'") == 0


def test_a_second_write_in_a_statement_scope_is_refused_before_it_is_sent(
    database: db.Database, observer: Engine
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(RuntimeError, match="second write"), database.statement() as session:
        session.rows(PROBE_INSERT, i=first)
        session.rows("SELECT id FROM helper_probe WHERE id = %(i)s::uuid FOR UPDATE", i=first)  # a read
        session.rows(PROBE_INSERT, i=second)
    assert (_count(observer, first), _count(observer, second)) == (1, 0)


def test_rows_come_back_by_name_and_each_statement_is_prepared_once_per_connection(
    database: db.Database,
) -> None:
    statement = "SELECT %(a)s::int + 1 AS answer, %(b)s::text AS word, %(a)s::int AS again"
    with database.statement() as session:
        row = session.one(statement, a=41, b="x")
        assert (row.answer, row.word, row.again) == (42, "x", 41)
        session.one(statement, a=1, b="y")
        prepared = session.rows("SELECT statement FROM pg_prepared_statements")
    matching = [r.statement for r in prepared if "$1::int + 1" in r.statement]
    assert len(matching) == 1, prepared


def test_a_constraint_violation_is_raised_as_the_driver_error_for_the_caller_to_log(
    database: db.Database,
) -> None:
    probe = uuid.uuid4()
    with database.statement() as session:
        session.rows(PROBE_INSERT, i=probe)
    with pytest.raises(psycopg2.errors.UniqueViolation), database.statement() as session:
        session.rows(PROBE_INSERT, i=probe)


def test_a_short_budget_gets_its_own_statement_timeout_and_a_long_one_the_default(
    database: db.Database,
) -> None:
    with pytest.raises(DeadlineExceeded), database.statement(timeout_ms=50) as session:
        session.rows("SELECT pg_sleep(2)")
    with pytest.raises(DeadlineExceeded), database.transaction(timeout_ms=50) as session:
        session.rows("SELECT 1")
        session.rows("SELECT pg_sleep(2)")
    with database.statement(timeout_ms=60_000) as session:  # longer than the default
        assert session.value("SELECT current_setting('statement_timeout')") == "5s"


def test_a_connection_killed_under_a_statement_is_unavailable_and_the_pool_replaces_it(
    database: db.Database,
) -> None:
    with database.statement() as session:
        pid = session.value("SELECT pg_backend_pid()")
    # the pool's only connection: its server process ends itself
    with pytest.raises(Unavailable), database.statement() as session:
        session.rows("SELECT pg_terminate_backend(pg_backend_pid())")
    with database.statement() as session:  # a fresh connection (prepares again), no restart needed
        assert session.value("SELECT pg_backend_pid()") != pid
    assert database.ping()
