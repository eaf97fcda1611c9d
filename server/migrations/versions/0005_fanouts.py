"""fan-out rows: one per group activity, not one delivery row per member inbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 18:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

import server.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fanouts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("activity_ids", sa.Text(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.String(length=2048), nullable=True),
        sa.Column("until", sa.String(length=2048), nullable=True),
        sa.Column("sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["outbound_activities.id"],
            name=op.f("fk_fanouts_activity_id_outbound_activities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_fanouts_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fanouts")),
    )
    with op.batch_alter_table("fanouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fanouts_activity_id"), ["activity_id"], unique=False)
        batch_op.create_index("ix_fanouts_due", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fanouts", schema=None) as batch_op:
        batch_op.drop_index("ix_fanouts_due")
        batch_op.drop_index(batch_op.f("ix_fanouts_activity_id"))
    op.drop_table("fanouts")
