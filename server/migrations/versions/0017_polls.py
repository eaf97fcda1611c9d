"""polls: the group's own polls and the votes in them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 20:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "polls",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("multiple", sa.Boolean(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("ends_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("changed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_polls_post_id_posts", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_polls_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", name="pk_polls"),
    )
    op.create_index("ix_polls_open", "polls", ["closed_at", "ends_at"])
    op.create_table(
        "poll_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("voter_uri", sa.String(length=2048), nullable=False),
        sa.Column("option", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["polls.post_id"], name="fk_poll_votes_post_id_polls", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_poll_votes"),
        sa.UniqueConstraint("post_id", "voter_uri", "option", name="uq_poll_votes_post_id_voter_uri_option"),
    )
    op.create_index("ix_poll_votes_created", "poll_votes", ["created_at"])


def downgrade() -> None:
    op.drop_table("poll_votes")
    op.drop_table("polls")
