"""A scope's statements on one pooled connection: SQL text in, named-tuple rows out.

With `prepare`, each statement is `PREPARE`d on first use per connection (the name is a hash of
its text, so one statement has one name everywhere) and sent as `EXECUTE` afterwards; a
reconnected connection has an empty `info`, so it prepares again.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extras
from sqlalchemy.pool import PoolProxiedConnection

_PREPARED = "payments.prepared"
_PARAM = re.compile(r"%\((\w+)\)s")
_LOCKING_CLAUSE = re.compile(r"\bFOR\s+(NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)
_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
Row = Any  # a psycopg2 named tuple: columns by name (`row.status`), in the statement's order


@dataclass(frozen=True)
class _Prepared:
    name: str
    execute: str  # `EXECUTE name (%s, ...)`
    order: tuple[str, ...]  # the named parameter of each position


@functools.cache
def _prepared(sql: str) -> tuple[_Prepared, str]:
    """The EXECUTE form of `sql` and its PREPARE text ($n for each distinct named parameter)."""
    order: list[str] = []

    def position(match: re.Match[str]) -> str:
        if match[1] not in order:
            order.append(match[1])
        return f"${order.index(match[1]) + 1}"

    body = _PARAM.sub(position, sql).replace("%%", "%")
    name = "p_" + hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:16]
    args = f" ({', '.join(['%s'] * len(order))})" if order else ""
    return _Prepared(name, f"EXECUTE {name}{args}", tuple(order)), f"PREPARE {name} AS {body}"


@functools.cache
def is_write(sql: str) -> bool:
    """True when the statement changes data (row-locking clauses of a SELECT do not count)."""
    return _WRITE.search(_LOCKING_CLAUSE.sub("", sql)) is not None


class Session:
    """Statements of one scope on one pooled connection; rows come back as named tuples."""

    def __init__(
        self,
        connection: PoolProxiedConnection,
        translate: Callable[[psycopg2.Error, PoolProxiedConnection], Exception],
        prepare: bool,
        prefix: str,
        single: bool,
    ):
        self._connection = connection
        self._translate = translate
        self._prepare = prepare
        self._prefix = prefix  # BEGIN and/or SET LOCAL, sent with the first statement
        self._single = single
        self._writes = 0

    @property
    def started(self) -> bool:
        """True once a statement was sent (so a transaction's BEGIN was too)."""
        return not self._prefix

    def rows(self, sql: str, **params: Any) -> list[Row]:
        """Every row of `sql` (none for a statement without a result)."""
        if is_write(sql):
            self._writes += 1
            if self._single and self._writes > 1:
                raise RuntimeError("a second write in db.statement(): use db.transaction() to keep it atomic")
        driver = self._connection.dbapi_connection
        assert driver is not None
        cursor = driver.cursor(cursor_factory=psycopg2.extras.NamedTupleCursor)
        try:
            text, values = self._text(cursor, sql, params)
            cursor.execute(self._prefix + text, values)
            self._prefix = ""
            return list(cursor.fetchall()) if cursor.description is not None else []
        except psycopg2.Error as err:
            mapped = self._translate(err, self._connection)
            if mapped is err:
                raise
            raise mapped from err
        finally:
            cursor.close()

    def _text(self, cursor: Any, sql: str, params: Mapping[str, Any]) -> tuple[str, Any]:
        if not self._prepare:
            return sql, params
        prepared, definition = _prepared(sql)
        done: set[str] = self._connection.info.setdefault(_PREPARED, set())
        if prepared.name not in done:
            cursor.execute(definition)
            done.add(prepared.name)
        return prepared.execute, [params[name] for name in prepared.order]

    def one(self, sql: str, **params: Any) -> Row | None:
        """The first row, or None."""
        found = self.rows(sql, **params)
        return found[0] if found else None

    def value(self, sql: str, **params: Any) -> Any:
        """The first column of the first row (a statement that always returns one row)."""
        return self.rows(sql, **params)[0][0]
