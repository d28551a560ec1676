"""DATABASE_URL as libpq writes it, several hosts included, becomes what SQLAlchemy and psycopg2 take."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.postgresql import psycopg2 as dialect
from sqlalchemy.engine import make_url

from payments_common.db import driver_url
from payments_common.dsn import sqlalchemy_url


def _connect_args(url: str) -> dict[str, object]:
    _args, kwargs = dialect.dialect().create_connect_args(make_url(driver_url(url)))
    return dict(kwargs)


def test_a_multi_host_url_reaches_psycopg2_as_libpq_host_and_port_lists():
    url = "postgresql://svc:p%40ss@db1:5441,db2:5442,db3/payments?target_session_attrs=read-write"
    assert _connect_args(url) == {
        "dbname": "payments",
        "user": "svc",
        "password": "p@ss",
        "host": "db1,db2,db3",
        "port": "5441,5442,",  # an empty entry is libpq's default port
        "target_session_attrs": "read-write",
    }


def test_a_multi_host_url_without_a_query_or_user_works_too():
    assert _connect_args("postgres://db1:1,db2:2/payments") == {
        "dbname": "payments",
        "host": "db1,db2",
        "port": "1,2",
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@localhost:5432/payments",
        "postgresql://u@/payments?host=/tmp/socket",
        "postgresql+psycopg2://u:p@db/payments?sslmode=require",
    ],
)
def test_a_single_host_url_is_left_as_it_is(url):
    assert sqlalchemy_url(url) == url


def test_ipv6_literals_in_a_host_list_are_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="DATABASE_URL"):
        sqlalchemy_url("postgresql://u@[::1]:5432,[::1]:5433/payments")
