"""The transaction service may check that a token's roles and scopes are still granted.

A demoted admin, or a service principal whose scope was withdrawn, must lose those rights at
once, as a disabled account does, not when its token expires: every main statement of the
transaction service checks the claimed `roles` (users) or `scopes` (service principals) in the
same EXISTS that checks `disabled`. The role may read those columns, still never a password or
secret hash, an email or a name.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TX_ROLE = "payments_tx_svc"


def upgrade() -> None:
    op.execute(f"GRANT SELECT (roles) ON auth.users TO {TX_ROLE}")
    op.execute(f"GRANT SELECT (scopes) ON auth.service_principals TO {TX_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT (scopes) ON auth.service_principals FROM {TX_ROLE}")
    op.execute(f"REVOKE SELECT (roles) ON auth.users FROM {TX_ROLE}")
