"""The transaction service may tell whether a service principal is still enabled.

A service principal's access token stops working on the transaction service as soon as the
principal is disabled or deleted, as a user's does: the service's role may read the `id` and
`disabled` columns of `auth.service_principals` (never its name, client id, secret hash or
scopes), exactly as it reads those two columns of `auth.users`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TX_ROLE = "payments_tx_svc"


def upgrade() -> None:
    op.execute(f"GRANT SELECT (id, disabled) ON auth.service_principals TO {TX_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT (id, disabled) ON auth.service_principals FROM {TX_ROLE}")
