"""membership events (joins and leaves, for a group's weekly figures), and indexes that keep
the figures and the directory's weekly activity to their window

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10 12:00:00.000000
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# When recording began: leavers are counted from then on (nothing kept them before).
SINCE_KEY = "membership_events_since"


def upgrade() -> None:
    op.create_table(
        "membership_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["local_actors.id"],
            name="fk_membership_events_group_id_local_actors",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_membership_events"),
    )
    op.create_index("ix_membership_events_group", "membership_events", ["group_id", "created_at"])
    op.create_index("ix_posts_group_created", "posts", ["group_id", "created_at"])
    op.create_index("ix_posts_created", "posts", ["created_at"])
    op.create_index("ix_reactions_created", "reactions", ["created_at"])
    settings = sa.table("instance_settings", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.execute(settings.insert().values(key=SINCE_KEY, value=datetime.now(UTC).isoformat()))


def downgrade() -> None:
    settings = sa.table("instance_settings", sa.column("key", sa.String))
    op.execute(settings.delete().where(settings.c.key == SINCE_KEY))
    op.drop_index("ix_reactions_created", table_name="reactions")
    op.drop_index("ix_posts_created", table_name="posts")
    op.drop_index("ix_posts_group_created", table_name="posts")
    op.drop_table("membership_events")
