"""SQLAlchemy Core tables: the one description of the schema.

Alembic revisions in ``server/migrations`` create these; ``tests/test_migrations.py``
checks that the migrated schema and this metadata agree. Times are timezone-aware UTC.
JSON documents are kept as text so SQLite and PostgreSQL store them byte for byte.
"""

from __future__ import annotations

import sqlalchemy as sa

from server.types import UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

TS = UTCDateTime()

# Instance-wide key/value settings: the generated secret key, the federation mode.
instance_settings = sa.Table(
    "instance_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Every local actor: groups, people (local accounts) and the instance's Application
# actor share this one table, so a name is never both a group and a user.
local_actors = sa.Table(
    "local_actors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # group | person | application
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("private_key_pem", sa.Text, nullable=False),
    sa.Column("public_key_pem", sa.Text, nullable=False),
    sa.Column("approval", sa.String(16), nullable=False, server_default="auto"),  # auto | manual
    sa.Column("posting", sa.String(16), nullable=False, server_default="members"),
    sa.Column("discoverable", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("rules", sa.Text, nullable=False, server_default=""),  # one rule per line
    sa.Column("created_at", TS, nullable=False),
    # A group's purpose beyond its summary: what members gain, what it sets out to do, and the
    # direct message each new member gets (when enabled).
    sa.Column("benefits", sa.Text, nullable=False, server_default=""),
    sa.Column("objectives", sa.Text, nullable=False, server_default=""),
    sa.Column("welcome", sa.Text, nullable=False, server_default=""),
    sa.Column("welcome_enabled", sa.Boolean, nullable=False, server_default=sa.true()),
)

# Who got a group's welcome message, and when: never twice within 30 days (a re-follow).
welcomes = sa.Table(
    "welcomes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor_uri", sa.String(2048), nullable=False),
    sa.Column("sent_at", TS, nullable=False),
    sa.UniqueConstraint("group_id", "actor_uri", name="uq_welcomes_group_actor"),
)

# A group's avatar (kind ``icon``) and header (``image``), as re-encoded on upload (server/images.py),
# at most one of each. The bytes live here so every web process serves them and a backup holds them;
# ``digest`` (SHA-256 of ``data``) is the content address in their URL.
group_media = sa.Table(
    "group_media",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # icon | image
    sa.Column("content_type", sa.String(32), nullable=False),  # image/png | image/jpeg
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("group_id", "kind", name="uq_group_media_group_id_kind"),
)

# Local accounts that can log in (admins, moderators); each has a person actor.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "actor_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("disabled_at", TS),  # set by an admin: no sign-in, no session, no token works
    # The fediverse account (an actor URI) this moderator reads moderation notices on and
    # replies from (``kith user link``); one account links to one user at most.
    sa.Column("linked_actor", sa.String(2048), unique=True),
)

# Console sign-in sessions: the cookie carries a random id, stored here only as its SHA-256.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("second_factor_pending", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("address", sa.String(64), nullable=False, server_default=""),
    sa.Column("user_agent", sa.String(255), nullable=False, server_default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
)

# Failed sign-ins, per account name (known or not) and per client address: the throttle's memory.
sign_in_failures = sa.Table(
    "sign_in_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),  # account | address
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("created_at", TS, nullable=False, index=True),
    sa.Index("ix_sign_in_failures_lookup", "scope", "key", "created_at"),
)

# Optional TOTP two-factor sign-in (RFC 6238) and its one-time recovery codes (stored hashed).
totp_credentials = sa.Table(
    "totp_credentials",
    metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("secret", sa.String(64), nullable=False),  # base32
    sa.Column("confirmed_at", TS),  # NULL: being set up, not yet asked at sign-in
    sa.Column("last_step", sa.BigInteger),  # the last time step accepted: a code works once
    sa.Column("created_at", TS, nullable=False),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("used_at", TS),
)

# Who leads a group: owner and moderators (local accounts).
group_roles = sa.Table(
    "group_roles",
    metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # owner | moderator
    sa.Column("created_at", TS, nullable=False),
)

# Remote actors we have fetched, with their keys: the key lookup for signatures.
remote_actors = sa.Table(
    "remote_actors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("domain", sa.String(255), nullable=False, index=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("preferred_username", sa.String(255)),
    sa.Column("name", sa.Text),
    sa.Column("inbox", sa.String(2048), nullable=False),
    sa.Column("shared_inbox", sa.String(2048)),
    sa.Column("key_id", sa.String(2048), index=True),
    sa.Column("public_key_pem", sa.Text),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("fetched_at", TS, nullable=False),
    sa.Column("suspended_at", TS),  # an admin suspended this one account instance-wide
)

# Members of a group and follow requests awaiting a moderator.
follows = sa.Table(
    "follows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("remote_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("activity_uri", sa.String(2048), nullable=False),  # the Follow's id, echoed in Accept/Reject
    sa.Column("activity_raw", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | accepted
    sa.Column("created_at", TS, nullable=False),
    sa.Column("decided_at", TS),
    sa.UniqueConstraint("group_id", "actor_id"),
    sa.Index("ix_follows_group_state", "group_id", "state"),
)

# Members joining and leaving, as they happen (a leave deletes the ``follows`` row, so this is
# the only record of it): ``joined`` (accepted), ``left`` (their Undo, or their actor deleted),
# ``removed`` (a ban, a domain block). Written by ``groups/following`` in the same transaction
# as the membership change; read for a group's weekly figures (``groups/stats``). Recording
# began with the migration that made it (``instance_settings`` ``membership_events_since``).
membership_events = sa.Table(
    "membership_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor_uri", sa.String(2048), nullable=False),  # no key to remote_actors: outlives a forgotten actor
    sa.Column("kind", sa.String(16), nullable=False),  # joined | left | removed
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_membership_events_group", "group_id", "created_at"),
)

# An outbound activity gone from its outbox: tombstoned or hidden. Written once, as text, for
# the partial index below and the query that counts through it (``federation/outbound.py``):
# SQLite uses a partial index only for a query that says its predicate as the index does.
OUTBOX_GONE = sa.text("(deleted_at IS NOT NULL OR hidden IS true)")

# Activities we authored (Accept, Reject, Announce ...): dereferenceable by id and
# stored once however many inboxes they go to.
outbound_activities = sa.Table(
    "outbound_activities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL")),  # what it is about
    sa.Column("deleted_at", TS),  # set when what it carried was deleted: the id then answers 410
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),  # its post's origin is suspended
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_outbound_activities_outbox", "actor_id", "type", "public", "id"),
    sa.Index("ix_outbound_activities_post", "post_id"),
    # Only the rows gone from their outbox (usually few): the kept outbox total subtracts them.
    sa.Index(
        "ix_outbound_activities_gone",
        *("actor_id", "type", "public", "id"),  # all the count reads: SQLite and PostgreSQL count from the index alone
        postgresql_where=OUTBOX_GONE,
        sqlite_where=OUTBOX_GONE,
    ),
)

# Each actor's outbox total, kept so that the outbox's totalItems is not a count of every row
# (243-589 ms at a million): ``n`` of its public Announces and Creates have an id up to ``upto``
# (whatever became of them since); moved on by the worker (federation/outbound.py).
outbox_counts = sa.Table(
    "outbox_counts",
    metadata,
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("upto", sa.Integer, nullable=False),  # every outbound_activities row with id <= upto is in n
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("settled_at", TS, nullable=False),
)

# Posts and comments of a group's threads (remote objects, sanitised, raw kept for audit).
posts = sa.Table(
    "posts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("remote_actors.id", ondelete="SET NULL")),
    sa.Column("author_uri", sa.String(2048), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),  # Note | Page | Article | Question
    sa.Column("in_reply_to", sa.String(2048)),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL")),
    sa.Column("root_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL")),  # NULL for a thread's root
    sa.Column("name", sa.Text),
    sa.Column("summary", sa.Text),  # content warning
    sa.Column("content_html", sa.Text, nullable=False, server_default=""),
    sa.Column("url", sa.String(2048)),
    sa.Column("sensitive", sa.Boolean, nullable=False, server_default=sa.false()),
    # visible | held (awaiting a moderator: silenced origin) | suspended (origin suspended) | deleted
    sa.Column("state", sa.String(16), nullable=False, server_default="visible"),
    sa.Column("likes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dislikes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("replies", sa.Integer, nullable=False, server_default="0"),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("published", TS, nullable=False),
    sa.Column("updated_at", TS),
    sa.Column("last_activity_at", TS, nullable=False),  # threads sort by this, newest first
    sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),  # no new replies
    sa.Column("pinned_at", TS),  # in the group's featured collection
    sa.Column("removed_reason", sa.Text),  # set when a moderator removed it (state "removed")
    sa.Column("held_reason", sa.Text),  # the guard or rule that held it for a moderator (state "held")
    sa.Column("deleted_at", TS),
    sa.Column("created_at", TS, nullable=False),
    # Partial, over thread roots only: PostgreSQL cannot take its order from an index whose
    # earlier column is matched by IS NULL, so root_id lives in the predicate instead.
    sa.Index(
        "ix_posts_threads",
        "group_id",
        "state",
        "last_activity_at",
        "id",
        postgresql_where=sa.text("root_id IS NULL"),
        sqlite_where=sa.text("root_id IS NULL"),
    ),
    sa.Index("ix_posts_root", "root_id", "published"),
    sa.Index("ix_posts_author_recent", "author_id", "created_at"),
    # A group's weekly figures read its last weeks (groups/stats), the directory every group's
    # last week (groups/directory): each a range of one of these, never the whole table.
    sa.Index("ix_posts_group_created", "group_id", "created_at"),
    sa.Index("ix_posts_created", "created_at"),
    # Partial: a handful of pinned posts among millions, found without touching the rest.
    sa.Index(
        "ix_posts_pinned",
        "group_id",
        "pinned_at",
        postgresql_where=sa.text("pinned_at IS NOT NULL"),
        sqlite_where=sa.text("pinned_at IS NOT NULL"),
    ),
)

# Deletes of objects we did not have (yet): a Create arriving after its Delete is refused
# when it is by the actor who sent the Delete (any actor, for a row with no actor_uri).
tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("uri", sa.String(2048), primary_key=True),
    sa.Column("deleted_at", TS, nullable=False),
    sa.Column("actor_uri", sa.String(2048), nullable=True),
)

# Likes, dislikes and emoji reactions, one per (post, actor, kind, emoji).
reactions = sa.Table(
    "reactions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("actor_uri", sa.String(2048), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # Like | Dislike | EmojiReact
    sa.Column("emoji", sa.String(64), nullable=False, server_default=""),
    sa.Column("activity_uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("post_id", "actor_uri", "kind", "emoji"),
    sa.Index("ix_reactions_created", "created_at"),  # who was active lately (groups/stats)
)


def _queue_columns() -> list[sa.Column]:
    """The state every durable job row carries (the database is the queue)."""
    return [
        sa.Column("state", sa.String(16), nullable=False, server_default="queued"),  # queued|done|dead|gone
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    ]


# Verified incoming activities, stored once before the 202; the worker processes them.
inbox_items = sa.Table(
    "inbox_items",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("activity_uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("actor_uri", sa.String(2048), nullable=False),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="SET NULL")),
    sa.Column("body", sa.Text, nullable=False),
    *_queue_columns(),
    sa.Index("ix_inbox_items_due", "state", "next_attempt_at"),
)

# One row per (activity, target inbox); signed at send time.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("activity_id", sa.Integer, sa.ForeignKey("outbound_activities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("inbox", sa.String(2048), nullable=False),
    sa.Column("domain", sa.String(255), nullable=False),
    *_queue_columns(),
    sa.UniqueConstraint("activity_id", "inbox"),
    sa.Index("ix_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_deliveries_domain", "domain", "state"),
)

# One row per group event sent to every member server (FEP-1b12 redistribution): its
# activities (``activity_ids``, a JSON list, sent in that order to each server over one
# connection: the Announce of the Create, then the plain Announce Mastodon shows;
# ``activity_id`` is the first). The worker sends from it straight to the members'
# inboxes, in inbox order, and writes a ``deliveries`` row only for an inbox that did not
# take one (to retry or to record why): 200 rows per post written up front were what
# limited processing. A row covers the
# inboxes after ``cursor`` up to ``until`` (inclusive; NULL: to the end); a large one is
# split into ranges that several workers send side by side. ``cursor`` advances to the
# last inbox such that it and every inbox before it are finished, so a fan-out cut off by
# a crash resumes after it.
fanouts = sa.Table(
    "fanouts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "activity_id",
        sa.Integer,
        sa.ForeignKey("outbound_activities.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("activity_ids", sa.Text, nullable=False),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("cursor", sa.String(2048)),
    sa.Column("until", sa.String(2048)),
    sa.Column("sent", sa.Integer, nullable=False, server_default="0"),  # inboxes with nothing left to send
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),  # inboxes left with a deliveries row
    *_queue_columns(),
    sa.Index("ix_fanouts_due", "state", "next_attempt_at"),
)

# Per-server circuit breaker: consecutive failures and when to try again.
server_health = sa.Table(
    "server_health",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("open_until", TS),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", TS, nullable=False),
)


# What software each remote server runs, read from its NodeInfo (``federation/nodeinfo``):
# a fan-out sends a server only the form of a post it displays. ``software`` is None when
# the server published none (or the lookup failed: ``error``); ``checked_at`` dates the lookup.
server_software = sa.Table(
    "server_software",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("software", sa.String(64)),
    sa.Column("version", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("checked_at", TS, nullable=False),
)


# Instance federation policy: Mastodon's domain block model.
domain_blocks = sa.Table(
    "domain_blocks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("domain", sa.String(255), nullable=False, unique=True),
    sa.Column("severity", sa.String(16), nullable=False),  # suspend | silence | noop
    sa.Column("reject_media", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reject_reports", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("public_comment", sa.Text, nullable=False, server_default=""),
    sa.Column("private_comment", sa.Text, nullable=False, server_default=""),
    sa.Column("obfuscate", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

# Limited federation (allowlist mode): only these domains federate at all.
domain_allows = sa.Table(
    "domain_allows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("domain", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
)

# Who changed the instance's policy, what, when and why.
admin_audit_log = sa.Table(
    "admin_audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("actor", sa.String(255), nullable=False),  # a local user's name, or "cli"
    sa.Column("action", sa.String(64), nullable=False),  # e.g. domain_block.create
    sa.Column("target", sa.String(2048), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", TS, nullable=False),
)

# OAuth 2 for the Mastodon-compatible API. Secrets and tokens are stored as SHA-256 digests.
oauth_apps = sa.Table(
    "oauth_apps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("website", sa.String(2048)),
    sa.Column("redirect_uris", sa.Text, nullable=False),  # newline-separated
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("client_id", sa.String(64), nullable=False, unique=True),
    sa.Column("client_secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

oauth_codes = sa.Table(
    "oauth_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("app_id", sa.Integer, sa.ForeignKey("oauth_apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    # PKCE (RFC 7636): set when the authorization request carried a challenge; the token
    # request must then present the matching verifier.
    sa.Column("code_challenge", sa.String(128)),
    sa.Column("code_challenge_method", sa.String(16)),
)

oauth_tokens = sa.Table(
    "oauth_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("app_id", sa.Integer, sa.ForeignKey("oauth_apps.id", ondelete="CASCADE")),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE")),  # NULL: client credentials
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
)


# Remote actors a group's owner made moderators (FEP-1b12: their moderation activities count).
remote_moderators = sa.Table(
    "remote_moderators",
    metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("actor_uri", sa.String(2048), primary_key=True),
    sa.Column("created_at", TS, nullable=False),
)

# Members banned from a group, until ``expires_at`` when set.
bans = sa.Table(
    "bans",
    metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("actor_uri", sa.String(2048), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("expires_at", TS),
    sa.Column("created_at", TS, nullable=False),
)

# Automatic guards per group (0 or empty: off).
group_guards = sa.Table(
    "group_guards",
    metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("hold_first_posts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("keywords", sa.Text, nullable=False, server_default=""),  # one per line
    sa.Column("link_domains", sa.Text, nullable=False, server_default=""),  # one per line
    sa.Column("filter_action", sa.String(16), nullable=False, server_default="hold"),  # hold | reject
    sa.Column("member_posts_per_hour", sa.Integer, nullable=False, server_default="0"),
    sa.Column("instance_posts_per_hour", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_group_mentions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", TS, nullable=False),
)

# The public moderation log of each group, like Lemmy's modlog.
mod_log = sa.Table(
    "mod_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("moderator", sa.String(2048), nullable=False),  # a local name or a remote actor URI
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(2048), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("expires_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_mod_log_group", "group_id", "id"),
    # The admins' domain-block candidates read the last day's bans of every group.
    sa.Index("ix_mod_log_action_recent", "action", "created_at"),
)

# Reports (Flag) in and out, and their lifecycle.
reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="SET NULL")),  # NULL: for admins
    sa.Column("flag_uri", sa.String(2048), unique=True),  # the incoming Flag's id
    sa.Column("reporter", sa.String(2048), nullable=False),  # remote actor URI or local user name; never sent on
    sa.Column("target_account", sa.String(2048)),
    sa.Column("target_posts", sa.Text, nullable=False, server_default="[]"),  # JSON list of URIs
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False, server_default="open"),  # open|assigned|resolved|rejected
    sa.Column("assigned_to", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
    sa.Column("action_taken", sa.Text, nullable=False, server_default=""),
    sa.Column("forwarded", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("outgoing", sa.Boolean, nullable=False, server_default=sa.false()),  # ours, sent to another server
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

# A blocklist import from the admin console: the uploaded CSV, previewed, then applied by
# the worker one line per transaction. ``done`` counts the lines applied and moves in the
# same transaction as each line's block, so progress is exact and a crashed import resumes
# where it stopped. ``state`` is ``preview`` (uploaded, waiting for the admin to apply it;
# never claimed) before it is ``queued``.
blocklist_imports = sa.Table(
    "blocklist_imports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("csv", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),  # lines to apply
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("added", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("refused", sa.Text, nullable=False, server_default="[]"),  # JSON [[line, domain, why], ...]
    *_queue_columns(),
    sa.Index("ix_blocklist_imports_due", "state", "next_attempt_at"),
)


# Moderation notices (moderation/notices.py): what a group's moderators are told of: a
# report, a held post, a follow request waiting, an alarm. One row per event; the item a
# command acts on is ``post_uri``, ``report_id`` or ``follow_actor`` (an alarm has none).
mod_notices = sa.Table(
    "mod_notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # report | held | follow | alarm
    sa.Column("post_uri", sa.String(2048)),
    sa.Column("report_id", sa.Integer, sa.ForeignKey("reports.id", ondelete="SET NULL")),
    sa.Column("follow_actor", sa.String(2048)),
    sa.Column("author", sa.String(2048)),  # whose post or follow it is (a handle or URI), for the text
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("excerpt", sa.Text, nullable=False, server_default=""),  # plain text, sanitised and cut short
    sa.Column("link", sa.String(2048)),
    sa.Column("reporter", sa.String(2048)),  # a report's reporter: shown only under the rule in notices.py
    sa.Column("created_at", TS, nullable=False),
    sa.Column("dismissed_at", TS),  # an alarm a local moderator dismissed in the console
    sa.Index("ix_mod_notices_group_id_kind_created_at", "group_id", "kind", "created_at"),
)

# One notice to one moderator's fediverse account: a queue row the worker gathers into one
# direct message per moderator per minute (``digest_id`` set once it went, with ``ref``, the
# item's number in that message).
mod_notice_sends = sa.Table(
    "mod_notice_sends",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("notice_id", sa.Integer, sa.ForeignKey("mod_notices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("recipient", sa.String(2048), nullable=False),  # the moderator's actor URI
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("mod_digests.id", ondelete="SET NULL")),
    sa.Column("ref", sa.Integer),
    *_queue_columns(),
    sa.Index("ix_mod_notice_sends_due", "state", "next_attempt_at"),
    sa.Index("ix_mod_notice_sends_group_id_recipient_digest_id", "group_id", "recipient", "digest_id"),
)

# The direct messages a group sent a moderator: a digest of notices, or the answer to a
# command (bound to the one notice it acted on). A reply is a command only when its
# ``inReplyTo`` is one of these ``note_uri``s and its sender is that ``recipient``.
mod_digests = sa.Table(
    "mod_digests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("recipient", sa.String(2048), nullable=False),
    sa.Column("note_uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("notice_id", sa.Integer, sa.ForeignKey("mod_notices.id", ondelete="SET NULL")),  # an answer's item
    sa.Column("created_at", TS, nullable=False),
)

# When each moderator last got a digest from each group: at most one a minute.
mod_notice_clocks = sa.Table(
    "mod_notice_clocks",
    metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("recipient", sa.String(2048), primary_key=True),
    sa.Column("last_sent_at", TS, nullable=False),
)

# Every moderator reply taken as a command, by the reply's own id: the same reply delivered
# twice (or in two Creates) acts once.
mod_replies = sa.Table(
    "mod_replies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reply_uri", sa.String(2048), nullable=False, unique=True),
    sa.Column("actor_uri", sa.String(2048), nullable=False),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("command", sa.Text, nullable=False, server_default=""),
    sa.Column("outcome", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", TS, nullable=False),
)

# Crowd control per group: on while ``until`` is in the future (it turns itself off by
# that stored time, never a timer), and the thresholds of its anomaly alarm. A group
# without a row has it off, with the default thresholds (``moderation/crowd_rules.py``).
crowd_control = sa.Table(
    "crowd_control",
    metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("until", TS),  # NULL or past: off
    sa.Column("turned_on_by", sa.String(2048), nullable=False, server_default=""),  # a moderator, or "alarm"
    sa.Column("reason", sa.Text, nullable=False, server_default=""),  # the alarm's reason, when it tripped
    sa.Column("new_member_posts", sa.Integer, nullable=False, server_default="20"),
    sa.Column("server_share_percent", sa.Integer, nullable=False, server_default="50"),
    sa.Column("server_min_posts", sa.Integer, nullable=False, server_default="25"),
    sa.Column("follows", sa.Integer, nullable=False, server_default="50"),
    sa.Column("updated_at", TS, nullable=False),
)

# Events per group per minute (``key``: posts, new_member_posts, follows, server:DOMAIN),
# added to by an atomic upsert so every worker process counts into the same rows; a
# ten-minute window is the sum of at most ten rows per key. Pruned after a day.
event_counts = sa.Table(
    "event_counts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("minute", TS, nullable=False),
    sa.Column("n", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("group_id", "key", "minute"),
    sa.Index("ix_event_counts_minute", "minute"),
)

# A group's recurring threads (server/groups/routine.py): a title and a text (templates), every
# day, week or month from ``start_local`` (a naive wall time in ``timezone``). ``next_at`` (UTC)
# and ``next_n`` are the next occurrence and its number; firing moves them on, once per occurrence.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("every", sa.String(8), nullable=False),
    sa.Column("start_local", sa.DateTime(timezone=False), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("next_at", TS, nullable=False),
    sa.Column("next_n", sa.Integer, nullable=False),
    sa.Column("last_posted_at", TS),
    sa.Column("posted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_schedules_next_at", "next_at"),
    sa.Index("ix_schedules_group_id_next_at", "group_id", "next_at"),
)

# The group's own polls (``kith group poll``), one row per Question the group posted: what the
# worker needs to send ``Update(Question)`` at most once a minute and to close it at its end.
polls = sa.Table(
    "polls",
    metadata,
    sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("group_id", sa.Integer, sa.ForeignKey("local_actors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("multiple", sa.Boolean, nullable=False),  # anyOf: a voter may pick several options
    sa.Column("options", sa.Text, nullable=False),  # JSON list of the option names, in order
    sa.Column("ends_at", TS, nullable=False),
    sa.Column("closed_at", TS),  # the final Update went out
    sa.Column("changed_at", TS),  # a vote counted since the last Update (NULL: nothing to send)
    sa.Column("sent_at", TS, nullable=False),  # the last Create or Update of it
    # The worker's sweep: open polls with news, and polls past their end not yet closed.
    sa.Index("ix_polls_open", "closed_at", "ends_at"),
)

# Votes in the group's polls, one per voter per option (Mastodon's vote: a Create of a Note
# named after the option, in reply to the poll). Never posts: not shown, not redistributed.
poll_votes = sa.Table(
    "poll_votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("post_id", sa.Integer, sa.ForeignKey("polls.post_id", ondelete="CASCADE"), nullable=False),
    sa.Column("voter_uri", sa.String(2048), nullable=False),
    sa.Column("option", sa.String(200), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("post_id", "voter_uri", "option"),
    sa.Index("ix_poll_votes_created", "created_at"),  # who was active lately (groups/stats)
)
