"""The sandbox's own storage: one SQLite file (stdlib `sqlite3`), never the payments PostgreSQL.

Charges, refunds, saved idempotent answers and the webhook outbox live in one file, so a restart
(or a kill -9) loses none of them: the write-ahead log is appended before a commit returns, which
survives the death of the process (`synchronous=NORMAL` only risks the last commits on a power
cut, which a sandbox may). Every call is made from the event loop's one thread; each is a short
local statement, so no thread pool is needed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    reference       TEXT NOT NULL,
    charge          TEXT REFERENCES objects (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    payment_method  TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'processing')),
    failure_code    TEXT,
    amount_refunded INTEGER NOT NULL DEFAULT 0 CHECK (amount_refunded BETWEEN 0 AND amount),
    created         INTEGER NOT NULL,
    settle_at       REAL,
    UNIQUE (kind, reference)
);
CREATE INDEX IF NOT EXISTS objects_to_settle ON objects (settle_at) WHERE settle_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    body       TEXT NOT NULL,
    due        REAL NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'abandoned')),
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due) WHERE state = 'pending';
"""

COLUMNS = (
    "id, kind, reference, charge, amount, currency, payment_method, status, failure_code,"
    " amount_refunded, created, settle_at"
)


@dataclass(frozen=True)
class Record:
    """A charge or a refund as the sandbox keeps it."""

    id: str
    kind: str
    reference: str
    charge: str | None
    amount: int
    currency: str
    payment_method: str
    status: str
    failure_code: str | None
    amount_refunded: int
    created: int
    settle_at: float | None

    def to_json(self) -> dict[str, Any]:
        """The API's object: what a client and a webhook see (no internal scheduling)."""
        data = asdict(self)
        data["object"] = data.pop("kind")
        del data["settle_at"]
        if self.kind == "charge":
            del data["charge"]
        else:
            del data["amount_refunded"]
        data["livemode"] = False
        return data

    def with_status(self, status: str, failure_code: str | None = None) -> Record:
        """The same object in another status (a webhook's snapshot, or the settled row)."""
        return replace(self, status=status, failure_code=failure_code, settle_at=None)


@dataclass(frozen=True)
class Delivery:
    """One attempt-to-be of sending one event to the webhook URL."""

    seq: int
    event_id: str
    body: str
    attempts: int


class Store:
    """Statements over the one connection; `unit()` groups several into one atomic commit."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: each statement commits alone unless inside `unit()`'s BEGIN
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=5000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the file (the WAL is checkpointed into it)."""
        self._conn.close()

    def ping(self) -> None:
        """Raise if the file cannot be read (the health check)."""
        self._conn.execute("SELECT 1 FROM objects LIMIT 1").fetchall()

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One atomic commit: everything inside happens, or nothing does."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def saved_answer(self, key: str) -> tuple[str, int, str] | None:
        """(fingerprint, status code, body) saved under an idempotency key."""
        row = self._conn.execute(
            "SELECT fingerprint, status_code, body FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        return (row["fingerprint"], row["status_code"], row["body"]) if row else None

    def save_answer(self, key: str, fingerprint: str, status_code: int, body: str) -> None:
        """Keep the answer given under `key`, replayed to every retry with the same request."""
        self._conn.execute(
            "INSERT INTO idempotency (key, fingerprint, status_code, body) VALUES (?, ?, ?, ?)",
            (key, fingerprint, status_code, body),
        )

    def get(self, object_id: str) -> Record | None:
        """A charge or refund by the sandbox's id."""
        row = self._conn.execute(f"SELECT {COLUMNS} FROM objects WHERE id = ?", (object_id,)).fetchone()
        return Record(**row) if row else None

    def find(self, kind: str, reference: str) -> Record | None:
        """A charge or refund by the merchant's reference."""
        row = self._conn.execute(
            f"SELECT {COLUMNS} FROM objects WHERE kind = ? AND reference = ?", (kind, reference)
        ).fetchone()
        return Record(**row) if row else None

    def insert(self, record: Record) -> None:
        """Record a new charge or refund."""
        values = asdict(record)
        self._conn.execute(
            f"INSERT INTO objects ({', '.join(values)}) VALUES ({', '.join(':' + name for name in values)})",
            values,
        )

    def reserve_refund(self, charge_id: str, amount: int) -> bool:
        """Count `amount` as refunded on a succeeded charge, if that stays within its amount."""
        cursor = self._conn.execute(
            "UPDATE objects SET amount_refunded = amount_refunded + ?"
            " WHERE id = ? AND kind = 'charge' AND status = 'succeeded' AND amount_refunded + ? <= amount",
            (amount, charge_id, amount),
        )
        return cursor.rowcount == 1

    def due_settlements(self, now: float) -> list[Record]:
        """Objects answered as processing whose final result is due."""
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM objects WHERE settle_at <= ? ORDER BY settle_at", (now,)
        ).fetchall()
        return [Record(**row) for row in rows]

    def settle(self, record: Record) -> None:
        """Store an object's final status."""
        self._conn.execute(
            "UPDATE objects SET status = ?, failure_code = ?, settle_at = NULL WHERE id = ?",
            (record.status, record.failure_code, record.id),
        )

    def enqueue(self, event_id: str, body: str, due: float) -> None:
        """Add one delivery of an event to the outbox."""
        self._conn.execute(
            "INSERT INTO deliveries (event_id, body, due) VALUES (?, ?, ?)", (event_id, body, due)
        )

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest first."""
        rows = self._conn.execute(
            "SELECT seq, event_id, body, attempts FROM deliveries"
            " WHERE state = 'pending' AND due <= ? ORDER BY due, seq LIMIT ?",
            (now, limit),
        ).fetchall()
        return [Delivery(**row) for row in rows]

    def delivery_done(self, seq: int, attempts: int, state: str, error: str | None, due: float) -> None:
        """Record an attempt: `delivered`, `abandoned`, or `pending` again at `due`."""
        self._conn.execute(
            "UPDATE deliveries SET attempts = ?, state = ?, last_error = ?, due = ? WHERE seq = ?",
            (attempts, state, error, due, seq),
        )
