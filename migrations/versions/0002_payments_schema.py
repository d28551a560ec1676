"""Payments tables: transactions and their append-only status events.

The constraints mirror the service's rules so that a bug in the code cannot
store money the rules forbid. The service role may read, insert and update
(only the mutable columns); it may never delete, and events are insert-only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TX_ROLE = "payments_tx_svc"
STATUSES = "('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE payments.transactions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid NOT NULL REFERENCES auth.users (id),
            type text NOT NULL CHECK (type IN ('PAYMENT', 'REFUND')),
            status text NOT NULL DEFAULT 'PENDING' CHECK (status IN {STATUSES}),
            amount_minor bigint NOT NULL CHECK (amount_minor > 0),
            currency text NOT NULL CHECK (currency ~ '^[A-Z]{{3}}$'),
            description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
            metadata jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(metadata) = 'object'),
            idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
            request_fingerprint bytea NOT NULL CHECK (length(request_fingerprint) = 32),
            refund_of uuid,
            refunded_minor bigint NOT NULL DEFAULT 0,
            version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT transactions_refund_of_iff_refund CHECK ((type = 'REFUND') = (refund_of IS NOT NULL)),
            CONSTRAINT transactions_refunded_within_amount CHECK (refunded_minor BETWEEN 0 AND amount_minor),
            CONSTRAINT transactions_only_payments_refunded CHECK (type = 'PAYMENT' OR refunded_minor = 0),
            CONSTRAINT transactions_user_idempotency_key UNIQUE (user_id, idempotency_key),
            -- target of the composite key below: a refund shares its payment's user and currency
            CONSTRAINT transactions_id_user_currency UNIQUE (id, user_id, currency),
            CONSTRAINT transactions_refund_of_fkey FOREIGN KEY (refund_of, user_id, currency)
                REFERENCES payments.transactions (id, user_id, currency)
        );
        -- keyset pagination, newest first: the page cost depends on the page size only
        CREATE INDEX transactions_user_created_idx
            ON payments.transactions (user_id, created_at DESC, id DESC);
        CREATE INDEX transactions_user_status_created_idx
            ON payments.transactions (user_id, status, created_at DESC, id DESC);
        -- refunds are the rare type: a partial index keeps "my refunds" cheap without a full one
        CREATE INDEX transactions_user_refunds_created_idx
            ON payments.transactions (user_id, created_at DESC, id DESC) WHERE type = 'REFUND';

        CREATE TABLE payments.transaction_events (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            transaction_id uuid NOT NULL REFERENCES payments.transactions (id),
            old_status text CHECK (old_status IN {STATUSES}),
            new_status text NOT NULL CHECK (new_status IN {STATUSES}),
            actor text NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 200),
            reason text NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500),
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            CONSTRAINT transaction_events_is_change CHECK (old_status IS DISTINCT FROM new_status)
        );
        CREATE INDEX transaction_events_transaction_idx
            ON payments.transaction_events (transaction_id, created_at, id);

        GRANT USAGE ON SCHEMA payments TO {TX_ROLE};
        GRANT SELECT, INSERT ON payments.transactions, payments.transaction_events TO {TX_ROLE};
        GRANT UPDATE (status, refunded_minor, version, updated_at) ON payments.transactions TO {TX_ROLE};
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS payments.transaction_events")
    op.execute("DROP TABLE IF EXISTS payments.transactions")
