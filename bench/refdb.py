"""The lean reference's storage: psycopg2 on a few threads, one connection each, four prepared statements.

Nothing of the services is used but the statement texts of `transaction_service.sql`; their
`%(name)s` parameters become `$n` here, and each statement is `PREPARE`d once per connection when
its thread starts. Rows come back as plain tuples and become `pb.Transaction` messages inline.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg2
import psycopg2.extensions
from google.protobuf.timestamp_pb2 import Timestamp

from payments.transaction.v1 import transaction_pb2 as pb
from transaction_service import sql

_PARAM = re.compile(r"%\((\w+)\)s")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Value = str | int | bool | bytes | list[str] | None
Row = tuple[object, ...]


@dataclass(frozen=True)
class Prepared:
    """One statement: its PREPARE text, its EXECUTE text and the named parameter of each `$n`."""

    name: str
    definition: str
    execute: str
    order: tuple[str, ...]

    @classmethod
    def of(cls, name: str, text: str) -> Prepared:
        order: list[str] = []

        def position(match: re.Match[str]) -> str:
            if match[1] not in order:
                order.append(match[1])
            return f"${order.index(match[1]) + 1}"

        body = _PARAM.sub(position, text).replace("%%", "%")
        placeholders = ", ".join(["%s"] * len(order))
        return cls(name, f"PREPARE {name} AS {body}", f"EXECUTE {name} ({placeholders})", tuple(order))

    def require(self, provided: set[str]) -> None:
        """Fail at start, naming them, when the statement takes parameters the caller does not give."""
        missing = set(self.order) - provided
        if missing:
            raise SystemExit(
                f"{self.name}: the statement now takes {sorted(missing)}; update bench/reference.py"
            )


GET = Prepared.of("ref_get", sql.GET_VISIBLE)
CREATE = Prepared.of("ref_create", sql.INSERT_PENDING_WITH_EVENT)
LIST = Prepared.of("ref_list", sql.list_page(frozenset()))
CHANGE = Prepared.of("ref_change", sql.CHANGE_STATUS)
STATEMENTS = (GET, CREATE, LIST, CHANGE)

STATUS_TO_WIRE = {
    "PENDING": pb.TRANSACTION_STATUS_PENDING,
    "PROCESSING": pb.TRANSACTION_STATUS_PROCESSING,
    "COMPLETED": pb.TRANSACTION_STATUS_COMPLETED,
    "FAILED": pb.TRANSACTION_STATUS_FAILED,
    "CANCELLED": pb.TRANSACTION_STATUS_CANCELLED,
}
STATUS_FROM_WIRE = {value: name for name, value in STATUS_TO_WIRE.items()}
TYPE_TO_WIRE = {"PAYMENT": pb.TRANSACTION_TYPE_PAYMENT, "REFUND": pb.TRANSACTION_TYPE_REFUND}
_AT = {name: index for index, name in enumerate(sql.TRANSACTION_FIELDS)}


def libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (`postgresql+psycopg2://` names the driver)."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgres") else url


def position(name: str) -> int:
    """Where column `name` of `sql.TRANSACTION_FIELDS` is in a row."""
    return _AT[name]


def micros(moment: datetime) -> int:
    """Microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def timestamp(moment: datetime) -> Timestamp:
    delta = moment - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def transaction(row: Sequence[object], offset: int = 0) -> pb.Transaction:
    """The wire form of a row holding `sql.TRANSACTION_FIELDS` from position `offset`."""

    def at(name: str) -> object:
        return row[offset + _AT[name]]

    refund_of = at("refund_of")
    return pb.Transaction(
        id=str(at("id")),
        user_id=str(at("user_id")),
        type=TYPE_TO_WIRE[str(at("type"))],
        status=STATUS_TO_WIRE[str(at("status"))],
        amount_minor=cast(int, at("amount_minor")),
        currency=str(at("currency")),
        description=str(at("description")),
        metadata=cast(dict[str, str], at("metadata")),
        idempotency_key=str(at("idempotency_key")),
        refund_of=str(refund_of) if refund_of else "",
        refunded_minor=cast(int, at("refunded_minor")),
        etag=str(at("version")),
        created_at=timestamp(cast(datetime, at("created_at"))),
        updated_at=timestamp(cast(datetime, at("updated_at"))),
    )


class _Connection(threading.local):
    """The calling thread's connection, opened (and its statements prepared) on first use."""

    def __init__(self, url: str, role: str | None) -> None:
        options = "-c lock_timeout=3000 -c statement_timeout=5000" + (f" -c role={role}" if role else "")
        self.connection = psycopg2.connect(url, options=options, application_name="bench_reference")
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            for statement in STATEMENTS:
                cursor.execute(statement.definition)


class Storage:
    """`threads` worker threads, each with its own autocommit connection."""

    def __init__(self, url: str, role: str | None, threads: int) -> None:
        self._local = _Connection(libpq_url(url), role)  # this thread's connection checks the URL now
        self._connections: list[psycopg2.extensions.connection] = [self._local.connection]
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db", initializer=self._open)

    def _open(self) -> None:
        with self._lock:
            self._connections.append(self._local.connection)

    def _run(self, statement: Prepared, params: dict[str, Value]) -> list[Row]:
        with self._local.connection.cursor() as cursor:
            cursor.execute(statement.execute, [params[name] for name in statement.order])
            return cursor.fetchall()

    async def rows(self, statement: Prepared, **params: Value) -> list[Row]:
        """Every row of one prepared statement, run on a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, statement, params)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for connection in self._connections:
            connection.close()
