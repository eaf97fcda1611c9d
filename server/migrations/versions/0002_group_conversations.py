"""group conversations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:28:55.172879
"""

import sqlalchemy as sa
from alembic import op

import server.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_uri", sa.String(length=2048), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("in_reply_to", sa.String(length=2048), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("root_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("content_html", sa.Text(), server_default="", nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("sensitive", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="visible", nullable=False),
        sa.Column("likes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dislikes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("replies", sa.Integer(), server_default="0", nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("published", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["remote_actors.id"], name=op.f("fk_posts_author_id_remote_actors"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_posts_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["posts.id"], name=op.f("fk_posts_parent_id_posts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["root_id"], ["posts.id"], name=op.f("fk_posts_root_id_posts"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
        sa.UniqueConstraint("uri", name=op.f("uq_posts_uri")),
    )
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.create_index("ix_posts_root", ["root_id", "published"], unique=False)
        batch_op.create_index(
            "ix_posts_threads",
            ["group_id", "state", "last_activity_at", "id"],
            unique=False,
            postgresql_where=sa.text("root_id IS NULL"),
            sqlite_where=sa.text("root_id IS NULL"),
        )

    op.create_table(
        "tombstones",
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("deleted_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uri", name=op.f("pk_tombstones")),
    )
    op.create_table(
        "reactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("emoji", sa.String(length=64), server_default="", nullable=False),
        sa.Column("activity_uri", sa.String(length=2048), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_reactions_post_id_posts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reactions")),
        sa.UniqueConstraint("activity_uri", name=op.f("uq_reactions_activity_uri")),
        sa.UniqueConstraint(
            "post_id", "actor_uri", "kind", "emoji", name=op.f("uq_reactions_post_id_actor_uri_kind_emoji")
        ),
    )
    with op.batch_alter_table("local_actors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules", sa.Text(), server_default="", nullable=False))

    with op.batch_alter_table("outbound_activities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("post_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("deleted_at", server.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbound_activities_outbox", ["actor_id", "type", "public", "id"], unique=False)
        batch_op.create_index("ix_outbound_activities_post", ["post_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_outbound_activities_post_id_posts"), "posts", ["post_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:

    with op.batch_alter_table("outbound_activities", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbound_activities_post_id_posts"), type_="foreignkey")
        batch_op.drop_index("ix_outbound_activities_post")
        batch_op.drop_index("ix_outbound_activities_outbox")
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("post_id")

    with op.batch_alter_table("local_actors", schema=None) as batch_op:
        batch_op.drop_column("rules")

    op.drop_table("reactions")
    op.drop_table("tombstones")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index("ix_posts_threads")
        batch_op.drop_index("ix_posts_root")

    op.drop_table("posts")
