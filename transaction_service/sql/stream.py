"""The statements of the change stream (WatchTransactions), as the text PostgreSQL sees."""

from __future__ import annotations

from transaction_service.sql.transactions import TRANSACTION_FIELDS

# --- The change stream (WatchTransactions); the audit events are its outbox (migration 0005) ---
# An event is served once no running database transaction can precede it: its xact_id is below
# the xmin of the reading snapshot (every smaller id has ended, every new one is larger), so what
# is served never grows behind a cursor. Order and cursor: (xact_id, position); the cursor
# (xmin, 0) means "everything below xmin". A change row is the event and its transaction as it was
# right after the change (the mutable columns the event kept; NULL for events older than 0005).
_AFTER_CHANGE = {
    "status": "e.new_status",
    "version": "coalesce(e.tx_version, t.version)",
    "refunded_minor": "coalesce(e.tx_refunded_minor, t.refunded_minor)",
    "updated_at": "coalesce(e.tx_updated_at, t.updated_at)",
    "failure_code": "CASE WHEN e.new_status = 'FAILED' THEN t.failure_code END",
}
CHANGE_COLUMNS = (
    "e.id AS event_id, e.old_status, e.actor, e.reason, e.created_at AS occurred_at, "
    "e.xact_id::text AS xact_id, e.position, "
    + ", ".join(f"{_AFTER_CHANGE.get(name, 't.' + name)} AS {name}" for name in TRANSACTION_FIELDS)
)
_AFTER_CURSOR = "(xact_id, position) > (%(after_xact)s::xid8, %(after_position)s::bigint)"

STREAM_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon"

# The one read of a process's reader, for all its watchers: the next changes nobody can precede,
# the horizon, and whether committed changes wait behind a running transaction (`blocked`).
STREAM_READ = f"""
WITH horizon AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
batch AS (
    SELECT * FROM payments.transaction_events
    WHERE {_AFTER_CURSOR} AND xact_id < (SELECT xmin FROM horizon)
    ORDER BY xact_id, position LIMIT %(limit)s::int
)
SELECT h.xmin::text AS horizon,
       EXISTS (SELECT FROM payments.transaction_events WHERE xact_id >= h.xmin) AS blocked,
       {CHANGE_COLUMNS}
FROM horizon h LEFT JOIN (batch e JOIN payments.transactions t ON t.id = e.transaction_id) ON true
ORDER BY e.xact_id, e.position
"""

# One watcher catching up to where the reader started serving it (`upto`, final already): at most
# `scan` events per round trip whatever the owner filter keeps, and the last one scanned.
STREAM_CATCH_UP = f"""
WITH scanned AS (
    SELECT * FROM payments.transaction_events
    WHERE {_AFTER_CURSOR}
      AND (xact_id, position) <= (%(upto_xact)s::xid8, %(upto_position)s::bigint)
    ORDER BY xact_id, position LIMIT %(scan)s::int
), last AS (
    SELECT xact_id, position FROM scanned ORDER BY xact_id DESC, position DESC LIMIT 1
)
SELECT l.xact_id::text AS scanned_xact, l.position AS scanned_position, {CHANGE_COLUMNS}
FROM last l LEFT JOIN (
    scanned e JOIN payments.transactions t
    ON t.id = e.transaction_id AND (%(owner)s::uuid IS NULL OR t.user_id = %(owner)s::uuid)
) ON true
ORDER BY e.xact_id, e.position
"""
