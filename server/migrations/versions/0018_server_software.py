"""server software from NodeInfo, cached per server: a fan-out sends each only the form it displays

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 19:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_software",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("software", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name="pk_server_software"),
    )


def downgrade() -> None:
    op.drop_table("server_software")
