"""crowd control: the per-group switch and thresholds, per-minute event counts, recent bans by action

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crowd_control",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("turned_on_by", sa.String(length=2048), server_default="", nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("new_member_posts", sa.Integer(), server_default="20", nullable=False),
        sa.Column("server_share_percent", sa.Integer(), server_default="50", nullable=False),
        sa.Column("server_min_posts", sa.Integer(), server_default="25", nullable=False),
        sa.Column("follows", sa.Integer(), server_default="50", nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_crowd_control_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", name="pk_crowd_control"),
    )
    op.create_table(
        "event_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("minute", UTCDateTime(timezone=True), nullable=False),
        sa.Column("n", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_event_counts_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event_counts"),
        sa.UniqueConstraint("group_id", "key", "minute", name="uq_event_counts_group_id_key_minute"),
    )
    op.create_index("ix_event_counts_minute", "event_counts", ["minute"])
    op.create_index("ix_mod_log_action_recent", "mod_log", ["action", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_mod_log_action_recent", table_name="mod_log")
    op.drop_table("event_counts")
    op.drop_table("crowd_control")
