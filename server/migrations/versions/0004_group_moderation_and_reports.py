"""group moderation and reports

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 15:53:27.358012
"""

import sqlalchemy as sa
from alembic import op

import server.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "bans",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("expires_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_bans_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "actor_uri", name=op.f("pk_bans")),
    )
    op.create_table(
        "group_guards",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("hold_first_posts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("keywords", sa.Text(), server_default="", nullable=False),
        sa.Column("link_domains", sa.Text(), server_default="", nullable=False),
        sa.Column("filter_action", sa.String(length=16), server_default="hold", nullable=False),
        sa.Column("member_posts_per_hour", sa.Integer(), server_default="0", nullable=False),
        sa.Column("instance_posts_per_hour", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_group_mentions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_group_guards_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_group_guards")),
    )
    op.create_table(
        "mod_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("moderator", sa.String(length=2048), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("expires_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_mod_log_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mod_log")),
    )
    with op.batch_alter_table("mod_log", schema=None) as batch_op:
        batch_op.create_index("ix_mod_log_group", ["group_id", "id"], unique=False)

    op.create_table(
        "remote_moderators",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["local_actors.id"],
            name=op.f("fk_remote_moderators_group_id_local_actors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "actor_uri", name=op.f("pk_remote_moderators")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("flag_uri", sa.String(length=2048), nullable=True),
        sa.Column("reporter", sa.String(length=2048), nullable=False),
        sa.Column("target_account", sa.String(length=2048), nullable=True),
        sa.Column("target_posts", sa.Text(), server_default="[]", nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("state", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("assigned_to", sa.Integer(), nullable=True),
        sa.Column("action_taken", sa.Text(), server_default="", nullable=False),
        sa.Column("forwarded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("outgoing", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_to"], ["users.id"], name=op.f("fk_reports_assigned_to_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_reports_group_id_local_actors"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("flag_uri", name=op.f("uq_reports_flag_uri")),
    )
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("pinned_at", server.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("removed_reason", sa.Text(), nullable=True))
        batch_op.create_index("ix_posts_author_recent", ["author_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_posts_pinned",
            ["group_id", "pinned_at"],
            unique=False,
            postgresql_where=sa.text("pinned_at IS NOT NULL"),
            sqlite_where=sa.text("pinned_at IS NOT NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index("ix_posts_pinned")
        batch_op.drop_index("ix_posts_author_recent")
        batch_op.drop_column("removed_reason")
        batch_op.drop_column("pinned_at")
        batch_op.drop_column("locked")

    op.drop_table("reports")
    op.drop_table("remote_moderators")
    with op.batch_alter_table("mod_log", schema=None) as batch_op:
        batch_op.drop_index("ix_mod_log_group")

    op.drop_table("mod_log")
    op.drop_table("group_guards")
    op.drop_table("bans")
