"""moderators told at once and acting by reply: notices, their sends and digests, linked accounts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from server.types import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _queue_columns() -> list[sa.Column]:
    return [
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("linked_actor", sa.String(length=2048), nullable=True))
        batch.create_unique_constraint("uq_users_linked_actor", ["linked_actor"])
    op.create_table(
        "mod_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("post_uri", sa.String(length=2048), nullable=True),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("follow_actor", sa.String(length=2048), nullable=True),
        sa.Column("author", sa.String(length=2048), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("excerpt", sa.Text(), server_default="", nullable=False),
        sa.Column("link", sa.String(length=2048), nullable=True),
        sa.Column("reporter", sa.String(length=2048), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("dismissed_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_mod_notices_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name="fk_mod_notices_report_id_reports", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mod_notices"),
    )
    op.create_index("ix_mod_notices_group_id_kind_created_at", "mod_notices", ["group_id", "kind", "created_at"])
    op.create_table(
        "mod_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=2048), nullable=False),
        sa.Column("note_uri", sa.String(length=2048), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_mod_digests_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["mod_notices.id"], name="fk_mod_digests_notice_id_mod_notices", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mod_digests"),
        sa.UniqueConstraint("note_uri", name="uq_mod_digests_note_uri"),
    )
    op.create_table(
        "mod_notice_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=2048), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("ref", sa.Integer(), nullable=True),
        *_queue_columns(),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["mod_notices.id"], name="fk_mod_notice_sends_notice_id_mod_notices", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_mod_notice_sends_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["digest_id"], ["mod_digests.id"], name="fk_mod_notice_sends_digest_id_mod_digests", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mod_notice_sends"),
    )
    op.create_index("ix_mod_notice_sends_due", "mod_notice_sends", ["state", "next_attempt_at"])
    op.create_index(
        "ix_mod_notice_sends_group_id_recipient_digest_id", "mod_notice_sends", ["group_id", "recipient", "digest_id"]
    )
    op.create_table(
        "mod_notice_clocks",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=2048), nullable=False),
        sa.Column("last_sent_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_mod_notice_clocks_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_id", "recipient", name="pk_mod_notice_clocks"),
    )
    op.create_table(
        "mod_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reply_uri", sa.String(length=2048), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.Text(), server_default="", nullable=False),
        sa.Column("outcome", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_actors.id"], name="fk_mod_replies_group_id_local_actors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mod_replies"),
        sa.UniqueConstraint("reply_uri", name="uq_mod_replies_reply_uri"),
    )


def downgrade() -> None:
    op.drop_table("mod_replies")
    op.drop_table("mod_notice_clocks")
    op.drop_table("mod_notice_sends")
    op.drop_table("mod_digests")
    op.drop_table("mod_notices")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_linked_actor", type_="unique")
        batch.drop_column("linked_actor")
