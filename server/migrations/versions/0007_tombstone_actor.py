"""tombstones keep the actor who sent the Delete: a tombstone binds only that actor

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:00:00.000000

Written beside 0006 (OAuth PKCE) and linked after it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows recorded before this revision do not know their actor, and keep
    # blocking a Create by anyone (server.groups.posts.seen_columns).
    with op.batch_alter_table("tombstones", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_uri", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tombstones", schema=None) as batch_op:
        batch_op.drop_column("actor_uri")
