"""The statements of payments and refunds, as the text PostgreSQL sees.

Parameters are named (`%(name)s`) and cast where they appear, so PostgreSQL never guesses a type
and a prepared statement gets the right one. A rule a statement enforces reads in its SQL: an
owner scope, an active caller, a compare-and-set on the status and version.
"""

from __future__ import annotations

import functools

# The columns of a transaction, declared once: every SELECT/RETURNING list and the row -> object
# mapping (`repository.transaction`) come from this tuple, so their order cannot drift.
TRANSACTION_FIELDS = (
    "id",
    "user_id",
    "type",
    "status",
    "amount_minor",
    "currency",
    "description",
    "metadata",
    "idempotency_key",
    "request_fingerprint",
    "refund_of",
    "refunded_minor",
    "version",
    "created_at",
    "updated_at",
    "processor",
    "failure_code",
)
TRANSACTION_COLUMNS = ", ".join(TRANSACTION_FIELDS)
EVENT_COLUMNS = "id, transaction_id, old_status, new_status, actor, reason, created_at"

# The caller's account (a user or a service principal: one parameter is NULL) exists, is not
# disabled, and still holds the roles or scopes its token claims (a demoted admin loses admin at
# once); folded into each main statement to spare a round trip. The service's role may read only
# `id`, `disabled` and `roles`/`scopes` of these tables.
CALLER_ACTIVE = """(
    EXISTS (SELECT id FROM auth.users WHERE id = %(caller_user)s::uuid AND NOT disabled
            AND roles @> %(caller_claims)s::text[])
    OR EXISTS (SELECT id FROM auth.service_principals WHERE id = %(caller_service)s::uuid AND NOT disabled
               AND scopes @> %(caller_claims)s::text[])
)"""
# `owner` NULL: a settler or an admin, who may see any user's transactions
VISIBLE = f"(%(owner)s::uuid IS NULL OR user_id = %(owner)s::uuid) AND {CALLER_ACTIVE}"

IS_CALLER_ACTIVE = f"SELECT {CALLER_ACTIVE} AS active"

# A PENDING payment or refund and its creation event, in one statement. The row source is the
# owner, if active; a taken idempotency key inserts nothing (ON CONFLICT waits for a concurrent
# insert of the same key to settle), and then nothing is returned. One the processor moves is
# queued for the submitter in the same statement.
INSERT_PENDING_WITH_EVENT = f"""
WITH created AS (
    INSERT INTO payments.transactions (user_id, type, amount_minor, currency, description, metadata,
                                       idempotency_key, request_fingerprint, refund_of, processor,
                                       payment_method)
    SELECT id, %(type)s::text, %(amount_minor)s::bigint, %(currency)s::text, %(description)s::text,
           %(metadata)s::jsonb, %(idempotency_key)s::text, %(request_fingerprint)s::bytea,
           %(refund_of)s::uuid, %(processor)s::text, %(payment_method)s::text
    FROM auth.users WHERE id = %(owner)s::uuid AND NOT disabled
    ON CONFLICT ON CONSTRAINT transactions_user_idempotency_key DO NOTHING
    RETURNING {TRANSACTION_COLUMNS}
), queued AS (
    INSERT INTO payments.processor_jobs (transaction_id) SELECT id FROM created WHERE processor IS NOT NULL
), creation_event AS (
    INSERT INTO payments.transaction_events (transaction_id, old_status, new_status, actor, reason,
                                             tx_version, tx_refunded_minor, tx_updated_at)
    SELECT id, NULL, status, %(actor)s::text, '', version, refunded_minor, updated_at FROM created
)
SELECT {TRANSACTION_COLUMNS} FROM created
"""

GET_BY_IDEMPOTENCY_KEY = f"""
SELECT {TRANSACTION_COLUMNS} FROM payments.transactions
WHERE user_id = %(owner)s::uuid AND idempotency_key = %(idempotency_key)s::text
"""

GET_VISIBLE = f"SELECT {TRANSACTION_COLUMNS} FROM payments.transactions WHERE id = %(id)s::uuid AND {VISIBLE}"

# Refunds of one payment queue on this lock, so the remaining amount they check is never stale.
# FOR NO KEY UPDATE: a new refund may still reference the payment while it is held.
LOCK_PAYMENT_FOR_REFUND = f"""
SELECT {TRANSACTION_COLUMNS} FROM payments.transactions
WHERE id = %(id)s::uuid AND user_id = %(owner)s::uuid AND {CALLER_ACTIVE}
FOR NO KEY UPDATE
"""

# The table's CHECK keeps refunded_minor within 0..amount_minor whatever the code does.
ADD_REFUNDED = """
UPDATE payments.transactions
SET refunded_minor = refunded_minor + %(delta)s::bigint, version = version + 1, updated_at = now()
WHERE id = %(id)s::uuid
"""

# A status change in one round trip: lock the row the caller may see, change it only when its
# status is one the target may follow (`from_statuses`) and, with an etag, only at that version;
# write the event; a refund that becomes FAILED or CANCELLED gives its amount back to its payment.
# A transaction the processor moves is only ever cancelled by hand.
# The row comes back either way: `changed` true with the new state, or false with the current one,
# from which the caller tells a repeat from a stale etag or an illegal transition. Locks are taken
# in the order of every other path: the transaction, then its payment.
_CHANGED_COLUMNS = ", ".join(f"t.{name}" for name in TRANSACTION_FIELDS)
CHANGE_STATUS = f"""
WITH found AS (
    SELECT {TRANSACTION_COLUMNS} FROM payments.transactions
    WHERE id = %(id)s::uuid AND {VISIBLE}
    FOR NO KEY UPDATE
), changed AS (
    UPDATE payments.transactions t
    SET status = %(target)s::text, version = t.version + 1, updated_at = now()
    FROM found
    WHERE t.id = found.id AND found.status = ANY (%(from_statuses)s::text[])
      AND (%(etag)s::bigint IS NULL OR found.version = %(etag)s::bigint)
      AND (found.processor IS NULL OR %(target)s::text = 'CANCELLED')
    RETURNING {_CHANGED_COLUMNS}
), status_event AS (
    INSERT INTO payments.transaction_events (transaction_id, old_status, new_status, actor, reason,
                                             tx_version, tx_refunded_minor, tx_updated_at)
    SELECT changed.id, found.status, changed.status, %(actor)s::text, %(reason)s::text,
           changed.version, changed.refunded_minor, changed.updated_at
    FROM changed, found
), released AS (
    UPDATE payments.transactions p
    SET refunded_minor = p.refunded_minor - changed.amount_minor, version = p.version + 1, updated_at = now()
    FROM changed
    WHERE p.id = changed.refund_of AND changed.type = 'REFUND'
      AND changed.status = ANY (%(releasing)s::text[])
)
SELECT true AS changed, {TRANSACTION_COLUMNS} FROM changed
UNION ALL
SELECT false, {TRANSACTION_COLUMNS} FROM found WHERE NOT EXISTS (SELECT FROM changed)
"""

EVENTS_OF = f"""
SELECT {EVENT_COLUMNS} FROM payments.transaction_events
WHERE transaction_id = %(id)s::uuid ORDER BY created_at, id
"""

# One page of a listing, newest first below the cursor. The indexes on
# (user_id[, status], created_at DESC, id DESC) serve every shape without a sort.
LIST_FILTERS = {
    "status": "status = %(status)s::text",
    "type": "type = %(type)s::text",
    "currency": "currency = %(currency)s::text",
    "created_from": "created_at >= %(created_from)s::timestamptz",
    "created_to": "created_at < %(created_to)s::timestamptz",
    "after": "(created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid)",
}


@functools.cache
def list_page(filters: frozenset[str]) -> str:
    """The page statement for one combination of `LIST_FILTERS` (one text, so one prepared plan)."""
    conditions = "".join(f" AND {LIST_FILTERS[name]}" for name in sorted(filters))
    return f"""
SELECT {TRANSACTION_COLUMNS} FROM payments.transactions
WHERE user_id = %(owner)s::uuid{conditions} AND {CALLER_ACTIVE}
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s::int
"""
