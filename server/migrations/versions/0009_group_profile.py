"""a group's purpose in full: what members gain, its objectives, the welcome it sends and to whom

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 17:00:00.000000

Written beside 0008 (console sessions) and linked after it.
"""

import sqlalchemy as sa
from alembic import op

import server.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("local_actors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("benefits", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("objectives", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("welcome", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("welcome_enabled", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        "welcomes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("group_id", sa.Integer(), sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("sent_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("group_id", "actor_uri", name="uq_welcomes_group_actor"),
    )


def downgrade() -> None:
    op.drop_table("welcomes")
    with op.batch_alter_table("local_actors", schema=None) as batch_op:
        for column in ("welcome_enabled", "welcome", "objectives", "benefits"):
            batch_op.drop_column(column)
