"""a group's purpose in full: what members gain, its objectives, and the welcome it sends

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 17:00:00.000000

Written beside 0008 (console sessions, on another branch); relinked after it when both land.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("local_actors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("benefits", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("objectives", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("welcome", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("welcome_enabled", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("local_actors", schema=None) as batch_op:
        for column in ("welcome_enabled", "welcome", "objectives", "benefits"):
            batch_op.drop_column(column)
