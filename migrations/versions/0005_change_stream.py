"""The audit events become the outbox of the change stream (WatchTransactions).

Each event records the id of the database transaction that wrote it (`xact_id`) and a `position`
from a sequence. A reader serves only events whose `xact_id` is below the `xmin` of its snapshot:
every transaction with a smaller id has ended, and any new one gets a larger id, so the set it
serves never grows behind its cursor, however the writers' commits interleave. Served in
`(xact_id, position)` order, a cursor on that pair misses nothing (a plain increasing id would skip
the rows of a transaction that commits after a later-started one).

Each event also keeps the mutable columns of its transaction as they were right after the change
(`tx_version`, `tx_refunded_minor`, `tx_updated_at`), so the stream sends the state after the
change, not the state when it is read. Events written before this migration have them NULL.

An AFTER INSERT trigger on the events:
- refuses (serialization_failure, so the caller retries) a status change that would be ordered
  before an earlier change of the same transaction: the changes of one transaction are delivered
  in the order they happened, by construction;
- sends `NOTIFY payments_transaction_events` (empty payload, so a transaction notifies once),
  the readers' wake-up hint; they poll as well.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TX_ROLE = "payments_tx_svc"
CHANNEL = "payments_transaction_events"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE payments.transaction_events
            ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            ADD COLUMN position bigint,
            ADD COLUMN tx_version integer,
            ADD COLUMN tx_refunded_minor bigint,
            ADD COLUMN tx_updated_at timestamptz;

        CREATE SEQUENCE payments.transaction_events_position_seq AS bigint
            OWNED BY payments.transaction_events.position;
        -- existing events in the order they were written (they all share this migration's xact_id)
        UPDATE payments.transaction_events e SET position = o.n
        FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n
              FROM payments.transaction_events) o
        WHERE e.id = o.id;
        SELECT setval('payments.transaction_events_position_seq',
                      coalesce((SELECT max(position) FROM payments.transaction_events), 0) + 1, false);
        ALTER TABLE payments.transaction_events
            ALTER COLUMN position SET DEFAULT nextval('payments.transaction_events_position_seq'),
            ALTER COLUMN position SET NOT NULL;

        -- the readers' order and cursor
        CREATE UNIQUE INDEX transaction_events_stream_idx
            ON payments.transaction_events (xact_id, position);

        CREATE FUNCTION payments.transaction_event_written() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.old_status IS NOT NULL AND EXISTS (
                SELECT FROM payments.transaction_events
                WHERE transaction_id = NEW.transaction_id AND xact_id > NEW.xact_id
            ) THEN
                RAISE EXCEPTION 'a change of transaction % would be ordered before an earlier one',
                    NEW.transaction_id USING ERRCODE = 'serialization_failure';
            END IF;
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$;
        CREATE TRIGGER transaction_event_written AFTER INSERT ON payments.transaction_events
            FOR EACH ROW EXECUTE FUNCTION payments.transaction_event_written();

        GRANT USAGE ON SEQUENCE payments.transaction_events_position_seq TO {TX_ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS transaction_event_written ON payments.transaction_events;
        DROP FUNCTION IF EXISTS payments.transaction_event_written();
        DROP INDEX IF EXISTS payments.transaction_events_stream_idx;
        ALTER TABLE payments.transaction_events
            DROP COLUMN IF EXISTS xact_id,
            DROP COLUMN IF EXISTS position,
            DROP COLUMN IF EXISTS tx_version,
            DROP COLUMN IF EXISTS tx_refunded_minor,
            DROP COLUMN IF EXISTS tx_updated_at;
        """
    )
