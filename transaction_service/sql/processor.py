"""The statements of the processor flow (submitter, reconciler, webhooks), as PostgreSQL sees them.

Each is one round trip that does its whole step, so a worker killed between two of them leaves a
state the next claim continues from: the queue row (`payments.processor_jobs`) stays until the
transaction is final, and its lease (`due_at`) hands it to another worker when one dies.
"""

from __future__ import annotations

_EVENT_COLUMNS = (
    "transaction_id, old_status, new_status, actor, reason, tx_version, tx_refunded_minor, tx_updated_at"
)

# Up to `limit` due jobs of one processor, claimed under a lease: SKIP LOCKED, so workers never
# wait on each other; `due_at` moves `lease_seconds` ahead, so the jobs of a worker killed mid-batch
# are claimed again after that. The rows come with what a submission needs (a refund: the
# processor's id of its payment).
CLAIM_JOBS = """
WITH due AS (
    SELECT j.transaction_id FROM payments.processor_jobs j
    JOIN payments.transactions t ON t.id = j.transaction_id AND t.processor = %(processor)s::text
    WHERE j.due_at <= now() ORDER BY j.due_at LIMIT %(limit)s::int
    FOR UPDATE OF j SKIP LOCKED
), claimed AS (
    UPDATE payments.processor_jobs j
    SET due_at = now() + %(lease_seconds)s::float8 * interval '1 second', attempts = j.attempts + 1
    FROM due WHERE j.transaction_id = due.transaction_id
    RETURNING j.transaction_id, j.attempts, j.submitted_at
)
SELECT c.attempts, c.submitted_at, now() AS claimed_at, t.id, t.type, t.status, t.amount_minor,
       t.currency, t.description, t.payment_method, t.refund_of, p.processor_id AS payment_processor_id
FROM claimed c JOIN payments.transactions t ON t.id = c.transaction_id
LEFT JOIN payments.transactions p ON p.id = t.refund_of
"""

# PENDING -> PROCESSING just before the first submission, with its event; the job records when.
# A transaction no longer PENDING (cancelled meanwhile) is not submitted: its job goes instead.
START_PROCESSING = f"""
WITH started AS (
    UPDATE payments.transactions SET status = 'PROCESSING', version = version + 1, updated_at = now()
    WHERE id = %(id)s::uuid AND status = 'PENDING'
    RETURNING id, status, version, refunded_minor, updated_at
), status_event AS (
    INSERT INTO payments.transaction_events ({_EVENT_COLUMNS})
    SELECT id, 'PENDING', status, %(actor)s::text, %(reason)s::text, version, refunded_minor, updated_at
    FROM started
), marked AS (
    UPDATE payments.processor_jobs SET submitted_at = now()
    WHERE transaction_id = %(id)s::uuid AND EXISTS (SELECT FROM started)
), dropped AS (
    DELETE FROM payments.processor_jobs
    WHERE transaction_id = %(id)s::uuid AND NOT EXISTS (SELECT FROM started)
)
SELECT EXISTS (SELECT FROM started) AS started
"""

# What the processor said (an answer, a look-up or a webhook) is kept as an event; a webhook's
# event id only once (a repeat records nothing and changes nothing). Then it applies: a PROCESSING
# transaction takes the final status `target` names (NULL: none yet, but the processor's id is
# kept), a FAILED refund gives its amount back, and a final transaction leaves the queue. Only
# PROCESSING moves, so a final status never changes: a late or stale answer is recorded, ignored.
APPLY_RESULT = f"""
WITH recorded AS (
    INSERT INTO payments.processor_events (transaction_id, processor, source, processor_event_id,
                                           outcome, failure_code, detail, body)
    SELECT (SELECT id FROM payments.transactions WHERE id = %(id)s::uuid), %(processor)s::text,
           %(source)s::text, %(event_id)s::text, %(outcome)s::text, %(failure_code)s::text,
           %(detail)s::text, %(body)s::jsonb
    ON CONFLICT ON CONSTRAINT processor_events_once DO NOTHING
    RETURNING id
), changed AS (
    UPDATE payments.transactions t
    SET status = coalesce(%(target)s::text, t.status),
        failure_code = CASE WHEN %(target)s::text = 'FAILED' THEN %(failure_code)s::text END,
        processor_id = coalesce(t.processor_id, %(processor_id)s::text),
        version = t.version + (%(target)s::text IS NOT NULL)::int,
        updated_at = CASE WHEN %(target)s::text IS NULL THEN t.updated_at ELSE now() END
    WHERE t.id = %(id)s::uuid AND t.status = 'PROCESSING' AND EXISTS (SELECT FROM recorded)
      AND (%(target)s::text IS NOT NULL OR (t.processor_id IS NULL AND %(processor_id)s::text IS NOT NULL))
    RETURNING t.id, t.type, t.status, t.amount_minor, t.refund_of, t.version, t.refunded_minor, t.updated_at
), status_event AS (
    INSERT INTO payments.transaction_events ({_EVENT_COLUMNS})
    SELECT id, 'PROCESSING', status, %(actor)s::text, %(reason)s::text, version, refunded_minor, updated_at
    FROM changed WHERE status <> 'PROCESSING'
), released AS (
    UPDATE payments.transactions p
    SET refunded_minor = p.refunded_minor - changed.amount_minor, version = p.version + 1, updated_at = now()
    FROM changed WHERE p.id = changed.refund_of AND changed.type = 'REFUND' AND changed.status = 'FAILED'
), finished AS (
    DELETE FROM payments.processor_jobs
    WHERE transaction_id = %(id)s::uuid AND EXISTS (SELECT FROM changed WHERE status <> 'PROCESSING')
)
SELECT EXISTS (SELECT FROM recorded) AS recorded,
       (SELECT status FROM changed WHERE status <> 'PROCESSING') AS changed_to,
       coalesce((SELECT status FROM changed),
                (SELECT status FROM payments.transactions WHERE id = %(id)s::uuid)) AS status
"""

# The next look-up of a job (the reconciler's), `delay_seconds` from now.
RESCHEDULE_JOB = """
UPDATE payments.processor_jobs SET due_at = now() + %(delay_seconds)s::float8 * interval '1 second'
WHERE transaction_id = %(id)s::uuid
"""

# A job whose transaction is final already (a webhook got there first).
DROP_JOB = "DELETE FROM payments.processor_jobs WHERE transaction_id = %(id)s::uuid"
