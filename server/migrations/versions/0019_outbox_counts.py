"""each actor's outbox count, kept, and an index of the outbox rows gone: totalItems without counting every row

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


GONE = sa.text("(deleted_at IS NOT NULL OR hidden IS true)")  # as server/tables.py's OUTBOX_GONE


def upgrade() -> None:
    op.create_index(
        "ix_outbound_activities_gone",
        "outbound_activities",
        ["actor_id", "type", "public", "id"],
        postgresql_where=GONE,
        sqlite_where=GONE,
    )
    # Empty at first: until the worker settles an actor's count, its outbox is counted live.
    op.create_table(
        "outbox_counts",
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("upto", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("settled_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["local_actors.id"],
            name=op.f("fk_outbox_counts_actor_id_local_actors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("actor_id", name=op.f("pk_outbox_counts")),
    )


def downgrade() -> None:
    op.drop_table("outbox_counts")
    op.drop_index("ix_outbound_activities_gone", table_name="outbound_activities")
