"""a group's avatar and header: their bytes in group_media; local_actors.icon_url, never written, goes

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03 10:00:00.000000

``local_actors.icon_url`` was read (into the actor's ``icon`` and the Mastodon API's
``avatar``) but nothing ever wrote it, so it held NULL in every row; a group's images are
now rows of ``group_media``, and their URLs are built from their digests.
"""

import sqlite3

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_group_media_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_group_media"),
        sa.UniqueConstraint("group_id", "kind", name="uq_group_media_group_id_kind"),
    )
    # A plain ALTER TABLE ... DROP COLUMN, never batch mode: on SQLite batch mode copies the table
    # and drops the old one, and with foreign keys on, dropping local_actors would cascade-delete
    # every row that names a local actor. SQLite has DROP COLUMN since 3.35; an older one keeps
    # the unused, always-NULL column (nothing reads it).
    if op.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        op.drop_column("local_actors", "icon_url")


def downgrade() -> None:
    op.add_column("local_actors", sa.Column("icon_url", sa.String(length=2048), nullable=True))
    op.drop_table("group_media")
