"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 15:12:15.768089
"""

import sqlalchemy as sa
from alembic import op

import server.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "instance_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_instance_settings")),
    )
    op.create_table(
        "local_actors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), server_default="", nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("icon_url", sa.String(length=2048), nullable=True),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("approval", sa.String(length=16), server_default="auto", nullable=False),
        sa.Column("posting", sa.String(length=16), server_default="members", nullable=False),
        sa.Column("discoverable", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_actors")),
        sa.UniqueConstraint("name", name=op.f("uq_local_actors_name")),
    )
    op.create_table(
        "remote_actors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("preferred_username", sa.String(length=255), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("inbox", sa.String(length=2048), nullable=False),
        sa.Column("shared_inbox", sa.String(length=2048), nullable=True),
        sa.Column("key_id", sa.String(length=2048), nullable=True),
        sa.Column("public_key_pem", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("fetched_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_actors")),
        sa.UniqueConstraint("uri", name=op.f("uq_remote_actors_uri")),
    )
    with op.batch_alter_table("remote_actors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_remote_actors_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_remote_actors_key_id"), ["key_id"], unique=False)

    op.create_table(
        "server_health",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open_until", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_server_health")),
    )
    op.create_table(
        "follows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("activity_uri", sa.String(length=2048), nullable=False),
        sa.Column("activity_raw", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["remote_actors.id"], name=op.f("fk_follows_actor_id_remote_actors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_follows_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follows")),
        sa.UniqueConstraint("group_id", "actor_id", name=op.f("uq_follows_group_id_actor_id")),
    )
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.create_index("ix_follows_group_state", ["group_id", "state"], unique=False)

    op.create_table(
        "inbox_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("activity_uri", sa.String(length=2048), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", server.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_inbox_items_group_id_local_actors"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_items")),
        sa.UniqueConstraint("activity_uri", name=op.f("uq_inbox_items_activity_uri")),
    )
    with op.batch_alter_table("inbox_items", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_items_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "outbound_activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["local_actors.id"],
            name=op.f("fk_outbound_activities_actor_id_local_actors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_activities")),
        sa.UniqueConstraint("uri", name=op.f("uq_outbound_activities_uri")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["local_actors.id"], name=op.f("fk_users_actor_id_local_actors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("actor_id", name=op.f("uq_users_actor_id")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("inbox", sa.String(length=2048), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
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
            name=op.f("fk_deliveries_activity_id_outbound_activities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("activity_id", "inbox", name=op.f("uq_deliveries_activity_id_inbox")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_domain", ["domain", "state"], unique=False)
        batch_op.create_index("ix_deliveries_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "group_roles",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", server.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name=op.f("fk_group_roles_group_id_local_actors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_group_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_roles")),
    )


def downgrade() -> None:

    op.drop_table("group_roles")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_due")
        batch_op.drop_index("ix_deliveries_domain")

    op.drop_table("deliveries")
    op.drop_table("users")
    op.drop_table("outbound_activities")
    with op.batch_alter_table("inbox_items", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_items_due")

    op.drop_table("inbox_items")
    with op.batch_alter_table("follows", schema=None) as batch_op:
        batch_op.drop_index("ix_follows_group_state")

    op.drop_table("follows")
    op.drop_table("server_health")
    with op.batch_alter_table("remote_actors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_actors_key_id"))
        batch_op.drop_index(batch_op.f("ix_remote_actors_domain"))

    op.drop_table("remote_actors")
    op.drop_table("local_actors")
    op.drop_table("instance_settings")
