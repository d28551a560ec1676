"""The unit-of-work helpers on a real PostgreSQL: autocommit scope, driver-level fetch, failures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, exc, text

from payments_common import db
from payments_common.errors import DeadlineExceeded, Unavailable


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(
        database_url, role=None, pool_size=1, pool_timeout=2, name="helpers-test", statement_timeout_ms=5000
    )
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS public.helper_probe (id uuid PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _count(engine: Engine, probe: uuid.UUID) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM helper_probe WHERE id = :i"), {"i": probe})
        return int(found.scalar_one())


def test_an_autocommitted_write_is_durable_at_once_and_the_pooled_connection_is_transactional_again(
    engine: Engine, database_url: str
) -> None:
    probe = uuid.uuid4()
    other = db.make_engine(database_url, role=None, pool_size=1, pool_timeout=2, name="helpers-observer")
    try:
        with db.autocommit(engine) as conn:
            db.fetch(conn, "INSERT INTO helper_probe (id) VALUES (%(i)s)", {"i": probe})
            assert _count(other, probe) == 1  # committed by the statement itself, not at the end
        # the single pooled connection is back in transactional mode: a failed unit of work leaves nothing
        second = uuid.uuid4()
        with pytest.raises(RuntimeError), db.unit_of_work(engine) as conn:
            db.fetch(conn, "INSERT INTO helper_probe (id) VALUES (%(i)s)", {"i": second})
            raise RuntimeError("the use case fails after its write")
        assert _count(other, second) == 0
    finally:
        other.dispose()


def test_fetch_returns_plain_rows_and_raises_driver_failures_as_sqlalchemy_errors(engine: Engine) -> None:
    with db.autocommit(engine) as conn:
        assert db.fetch(conn, "SELECT %(a)s::int + 1, 'x'", {"a": 41}) == [(42, "x")]
        assert db.fetch(conn, "SET application_name = 'still-a-statement'", {}) == []
        with pytest.raises(exc.ProgrammingError) as raised:
            db.fetch(conn, "SELECT * FROM no_such_table", {})
    assert db.translate(raised.value) is None  # a bug, not a client error: the caller logs it


def test_a_short_budget_runs_in_a_transaction_with_its_own_statement_timeout(engine: Engine) -> None:
    with db.autocommit(engine, timeout_ms=50) as conn, pytest.raises(exc.OperationalError) as raised:
        db.fetch(conn, "SELECT pg_sleep(2)", {})
    assert isinstance(db.translate(raised.value), DeadlineExceeded)
    with db.autocommit(engine, timeout_ms=60_000) as conn:  # longer than the default: no transaction
        assert db.fetch(conn, "SELECT current_setting('statement_timeout')", {}) == [("5s",)]


def test_a_connection_killed_under_fetch_is_unavailable_and_the_pool_replaces_it(engine: Engine) -> None:
    with db.autocommit(engine) as conn:
        pid = db.fetch(conn, "SELECT pg_backend_pid()", {})[0][0]
    # the pool's only connection: its server process ends itself
    with db.autocommit(engine) as conn, pytest.raises(exc.DBAPIError) as raised:
        db.fetch(conn, "SELECT pg_terminate_backend(pg_backend_pid())", {})
    assert raised.value.connection_invalidated
    assert isinstance(db.translate(raised.value), Unavailable)
    with db.autocommit(engine) as conn:  # a fresh connection, no restart needed
        assert db.fetch(conn, "SELECT pg_backend_pid()", {})[0][0] != pid
