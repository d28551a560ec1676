"""Payments through a payment processor: PROCESSING, failure codes, a work queue, processor events.

- `PROCESSING` joins the statuses. A trigger now enforces the whole status machine on every write
  of a transaction: PENDING -> PROCESSING | COMPLETED | FAILED | CANCELLED, PROCESSING ->
  COMPLETED | FAILED, and a final status never changes, whatever the code does.
- A transaction moved by a processor names it (`processor`); a payment keeps the processor's
  token of its payment method (never a card number: the service refuses those) and the
  processor's id of the charge (`processor_id`); a FAILED one keeps the processor's
  `failure_code`.
- `processor_jobs` is the submitter's and reconciler's work queue: one row per transaction the
  processor still has to settle, claimed with SKIP LOCKED under a lease (`due_at` moves past the
  lease), so a worker killed mid-batch leaves its jobs to the next claim.
- `processor_events` keeps every answer, look-up and webhook; a webhook's event id is unique per
  processor, so each is applied at most once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TX_ROLE = "payments_tx_svc"
OLD = "('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')"
NEW = "('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')"


def _statuses(values: str) -> str:
    return f"""
        ALTER TABLE payments.transactions DROP CONSTRAINT transactions_status_check,
            ADD CONSTRAINT transactions_status_check CHECK (status IN {values});
        ALTER TABLE payments.transaction_events DROP CONSTRAINT transaction_events_old_status_check,
            ADD CONSTRAINT transaction_events_old_status_check CHECK (old_status IN {values}),
            DROP CONSTRAINT transaction_events_new_status_check,
            ADD CONSTRAINT transaction_events_new_status_check CHECK (new_status IN {values});
    """


def upgrade() -> None:
    op.execute(
        _statuses(NEW)
        + f"""
        ALTER TABLE payments.transactions
            ADD COLUMN processor text CHECK (processor ~ '^[a-z][a-z0-9_]{{0,39}}$'),
            ADD COLUMN payment_method text CHECK (char_length(payment_method) BETWEEN 1 AND 255),
            ADD COLUMN processor_id text CHECK (char_length(processor_id) BETWEEN 1 AND 255),
            ADD COLUMN failure_code text CHECK (char_length(failure_code) BETWEEN 1 AND 100),
            ADD CONSTRAINT transactions_failure_code_if_failed CHECK (failure_code IS NULL OR status = 'FAILED'),
            ADD CONSTRAINT transactions_processing_by_processor
                CHECK (status <> 'PROCESSING' OR processor IS NOT NULL),
            ADD CONSTRAINT transactions_payment_method_of_processed_payment
                CHECK (payment_method IS NULL OR (processor IS NOT NULL AND type = 'PAYMENT'));

        CREATE FUNCTION payments.transaction_status_machine() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
                (OLD.status = 'PENDING' AND NEW.status IN ('PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'))
                OR (OLD.status = 'PROCESSING' AND NEW.status IN ('COMPLETED', 'FAILED'))
            ) THEN
                RAISE EXCEPTION 'transaction %: % cannot become %', OLD.id, OLD.status, NEW.status
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER transaction_status_machine BEFORE UPDATE OF status ON payments.transactions
            FOR EACH ROW EXECUTE FUNCTION payments.transaction_status_machine();

        CREATE TABLE payments.processor_jobs (
            transaction_id uuid PRIMARY KEY REFERENCES payments.transactions (id),
            due_at timestamptz NOT NULL DEFAULT now(),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            submitted_at timestamptz,  -- set with PENDING -> PROCESSING; NULL: never sent
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX processor_jobs_due_idx ON payments.processor_jobs (due_at);

        CREATE TABLE payments.processor_events (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            transaction_id uuid REFERENCES payments.transactions (id),  -- NULL: not one of ours
            processor text NOT NULL,
            source text NOT NULL CHECK (source IN ('answer', 'lookup', 'webhook')),
            processor_event_id text CHECK (char_length(processor_event_id) BETWEEN 1 AND 255),
            outcome text NOT NULL CHECK (outcome IN ('APPROVED', 'DECLINED', 'PROCESSING', 'UNKNOWN', 'NOT_FOUND')),
            failure_code text,
            detail text NOT NULL DEFAULT '',
            body jsonb NOT NULL DEFAULT '{{}}',
            received_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT processor_events_once UNIQUE (processor, processor_event_id),
            CONSTRAINT processor_events_webhook_has_id CHECK ((source = 'webhook') = (processor_event_id IS NOT NULL))
        );
        CREATE INDEX processor_events_transaction_idx ON payments.processor_events (transaction_id, received_at);

        GRANT UPDATE (processor_id, failure_code) ON payments.transactions TO {TX_ROLE};
        GRANT SELECT, INSERT, UPDATE, DELETE ON payments.processor_jobs TO {TX_ROLE};
        GRANT SELECT, INSERT ON payments.processor_events TO {TX_ROLE};
        """
    )


def downgrade() -> None:
    # the audit trail is append-only: with PROCESSING in it, the old CHECKs cannot hold
    op.execute(
        """
        DO $$ BEGIN
            IF EXISTS (SELECT FROM payments.transactions WHERE processor IS NOT NULL) THEN
                RAISE EXCEPTION 'cannot downgrade below 0006: payments went through a processor';
            END IF;
        END $$;
        DROP TABLE payments.processor_events;
        DROP TABLE payments.processor_jobs;
        DROP TRIGGER transaction_status_machine ON payments.transactions;
        DROP FUNCTION payments.transaction_status_machine();
        ALTER TABLE payments.transactions DROP COLUMN processor, DROP COLUMN payment_method,
            DROP COLUMN processor_id, DROP COLUMN failure_code;
        """
        + _statuses(OLD)
    )
