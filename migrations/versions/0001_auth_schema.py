"""Schemas, service roles and the auth tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AUTH_ROLE = "payments_auth_svc"
TX_ROLE = "payments_tx_svc"


def upgrade() -> None:
    # Roles are cluster-wide. Create them when this migration may (dev, CI); a
    # production DBA creates them beforehand (see README) and this is a no-op.
    for role in (AUTH_ROLE, TX_ROLE):
        op.execute(
            f"""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                IF (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                  CREATE ROLE {role} NOLOGIN;
                  EXECUTE format('GRANT {role} TO %I', current_user);
                ELSE
                  RAISE EXCEPTION 'role {role} is missing and % may not create it', current_user;
                END IF;
              END IF;
            END $$;
            """
        )
    op.execute("CREATE SCHEMA IF NOT EXISTS auth")
    op.execute("CREATE SCHEMA IF NOT EXISTS payments")
    op.execute(
        """
        CREATE TABLE auth.users (
            id uuid PRIMARY KEY,
            email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
            full_name text NOT NULL DEFAULT '' CHECK (length(full_name) <= 200),
            password_hash text NOT NULL,
            roles text[] NOT NULL DEFAULT '{user}' CHECK (roles <@ ARRAY['user', 'admin']::text[]),
            disabled boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX users_email_key ON auth.users (email);

        CREATE TABLE auth.service_principals (
            id uuid PRIMARY KEY,
            client_id text NOT NULL UNIQUE,
            name text NOT NULL,
            secret_hash text NOT NULL,
            scopes text[] NOT NULL DEFAULT '{}',
            disabled boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE auth.signing_keys (
            kid text PRIMARY KEY,
            algorithm text NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
            private_key_pem text NOT NULL,
            public_jwk jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            retired_at timestamptz
        );

        CREATE TABLE auth.refresh_tokens (
            id uuid PRIMARY KEY,
            family_id uuid NOT NULL,
            user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
            token_hash bytea NOT NULL UNIQUE,
            issued_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            used_at timestamptz,
            revoked_at timestamptz
        );
        CREATE INDEX refresh_tokens_family_idx ON auth.refresh_tokens (family_id);

        CREATE TABLE auth.login_throttle (
            key text PRIMARY KEY,
            failures integer NOT NULL CHECK (failures >= 0),
            window_started_at timestamptz NOT NULL,
            blocked_until timestamptz
        );
        """
    )
    op.execute(
        f"""
        REVOKE ALL ON SCHEMA auth FROM PUBLIC;
        REVOKE ALL ON SCHEMA payments FROM PUBLIC;
        GRANT USAGE ON SCHEMA auth TO {AUTH_ROLE}, {TX_ROLE};
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth TO {AUTH_ROLE};
        -- the transaction service may only see that a user id exists
        GRANT SELECT (id, disabled) ON auth.users TO {TX_ROLE};
        """
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS auth CASCADE")
    op.execute("DROP SCHEMA IF EXISTS payments CASCADE")
