"""oauth pkce: an authorization code remembers its PKCE challenge (RFC 7636)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_challenge", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("code_challenge_method", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_codes", schema=None) as batch_op:
        batch_op.drop_column("code_challenge_method")
        batch_op.drop_column("code_challenge")
