"""A server that refuses writes (a standby reached through an old connection) is UNAVAILABLE, and the
whole pool is replaced, as after a lost connection (README, *Availability*)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from payments_common import db
from payments_common.errors import Unavailable


@pytest.fixture
def read_only(database_url: str) -> Iterator[db.Database]:
    # every session read-only: writes fail as on a hot standby (SQLSTATE 25006)
    engine = create_engine(
        db.driver_url(database_url),
        pool_size=2,
        max_overflow=0,
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    database = db.Database(engine)
    yield database
    database.dispose()


def _backends(database: db.Database) -> set[int]:
    with database.statement() as first, database.statement() as second:
        return {first.value("SELECT pg_backend_pid()"), second.value("SELECT pg_backend_pid()")}


@pytest.mark.parametrize("scope", ["statement", "transaction"])
def test_a_write_refused_as_read_only_is_unavailable_and_replaces_every_pooled_connection(read_only, scope):
    before = _backends(read_only)
    with pytest.raises(Unavailable), getattr(read_only, scope)() as session:
        session.rows("UPDATE payments.transactions SET description = description WHERE false")
    assert not before & _backends(read_only)
