"""Threads, posts, reactions and tombstones of a group; keyset-paged reads.

The one owner of the ``posts``, ``reactions`` and ``tombstones`` tables: every change of a
post's state (held, visible, removed, deleted, suspended), lock or pin happens here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.federation import outbound
from server.federation.actors import RemoteActor
from server.federation.objects import PostEnvelope
from server.rows import chunked, record, record_or_none
from server.tables import posts, remote_actors, tombstones
from server.types import utcnow

STATES = ("visible", "held", "removed", "deleted", "suspended")
# What a moderator's removal may touch, and what approval may decide.
REMOVABLE = ("visible", "held")


@dataclass(frozen=True, slots=True)
class Post:
    """A post or comment of a group's thread (a remote object, sanitised; its raw JSON kept for audit)."""

    id: int
    uri: str
    group_id: int
    author_id: int | None
    author_uri: str
    type: str  # Note | Page | Article | Question
    in_reply_to: str | None
    parent_id: int | None
    root_id: int | None  # None for a thread's first post
    name: str | None
    summary: str | None  # content warning
    content_html: str
    url: str | None
    sensitive: bool
    state: str  # visible | held | removed | deleted | suspended
    likes: int
    dislikes: int
    replies: int
    raw: str
    published: datetime
    updated_at: datetime | None
    last_activity_at: datetime
    locked: bool
    pinned_at: datetime | None
    removed_reason: str | None
    held_reason: str | None  # the guard or rule that held it
    deleted_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuthoredPost(Post):
    """A post with its author's names, as listings show it."""

    preferred_username: str | None
    author_domain: str | None
    author_name: str | None


# Statements built once: SQLAlchemy keys its compiled-SQL cache on a statement's structure,
# and a statement object remembers its key, so reusing one skips rebuilding and re-keying it.
_FIND_POST = sa.select(posts).where(posts.c.uri == sa.bindparam("uri"))
_FIND_POST_BY_ID = sa.select(posts).where(posts.c.id == sa.bindparam("post_id"))
_INSERT_POST = sa.insert(posts).returning(*posts.c)


def _bump_root(dialect: str) -> sa.Update:
    """A reply counts in its thread and moves it up (never back: a late reply keeps the newest time)."""
    published = sa.bindparam("reply_published", type_=posts.c.last_activity_at.type)
    later = sa.func.greatest if dialect == "postgresql" else sa.func.max
    return (
        sa.update(posts)
        .where(posts.c.id == sa.bindparam("thread_root"))
        .values(replies=posts.c.replies + 1, last_activity_at=later(posts.c.last_activity_at, published))
    )


_BUMP_ROOT = {dialect: _bump_root(dialect) for dialect in ("postgresql", "sqlite")}


async def find_post(conn: AsyncConnection, uri: str) -> Post | None:
    """The post stored under ``uri``, or None."""
    return record_or_none(Post, (await conn.execute(_FIND_POST, {"uri": uri})).one_or_none())


async def find_post_by_id(conn: AsyncConnection, post_id: int) -> Post | None:
    """The post with this id, or None."""
    return record_or_none(Post, (await conn.execute(_FIND_POST_BY_ID, {"post_id": post_id})).one_or_none())


async def find_posts(conn: AsyncConnection, uris: Sequence[str]) -> dict[str, Post]:
    """The stored posts among ``uris``, by URI."""
    found: dict[str, Post] = {}
    for chunk in chunked(uris):
        for row in (await conn.execute(sa.select(posts).where(posts.c.uri.in_(chunk)))).all():
            found[row.uri] = record(Post, row)
    return found


async def insert_post(
    conn: AsyncConnection,
    *,
    group_id: int,
    env: PostEnvelope,
    raw: dict[str, Any],
    author_id: int | None,
    parent: Post | None,
    state: str = "visible",
    held_reason: str | None = None,
) -> Post:
    """Store a post in a group's thread (a reply bumps its thread and counts there)."""
    now = utcnow()
    published = min(env.published or now, now)  # a claimed future date cannot pin a thread on top
    root_id = (parent.root_id or parent.id) if parent is not None else None
    values = {
        "uri": env.uri,
        "group_id": group_id,
        "author_id": author_id,
        "author_uri": env.author,
        "type": env.type,
        "in_reply_to": env.in_reply_to,
        "parent_id": parent.id if parent is not None else None,
        "root_id": root_id,
        "name": env.name,
        "summary": env.summary,
        "content_html": env.content_html,
        "url": env.url,
        "sensitive": env.sensitive,
        "state": state,
        "held_reason": held_reason if state == "held" else None,
        "raw": json.dumps(raw, separators=(",", ":")),
        "published": published,
        "last_activity_at": published,
        "created_at": now,
    }
    row = (await conn.execute(_INSERT_POST, values)).one()
    if root_id is not None and state == "visible":
        await conn.execute(_BUMP_ROOT[conn.dialect.name], {"thread_root": root_id, "reply_published": published})
    return record(Post, row)


async def set_link(conn: AsyncConnection, post_id: int, url: str, raw: dict[str, Any]) -> None:
    """Give a post of our own its page's ``url`` (known once the row has its id), and the object as sent."""
    await conn.execute(
        sa.update(posts).where(posts.c.id == post_id).values(url=url, raw=json.dumps(raw, separators=(",", ":")))
    )


async def set_raw(conn: AsyncConnection, post_id: int, raw: dict[str, Any]) -> None:
    """Replace a post's stored object, nothing else (the group's own poll with its current counts)."""
    await conn.execute(sa.update(posts).where(posts.c.id == post_id).values(raw=json.dumps(raw, separators=(",", ":"))))


async def update_post(conn: AsyncConnection, post: Post, env: PostEnvelope, raw: dict[str, Any]) -> None:
    """Apply an author's edit (content, title, content warning, poll counts)."""
    await conn.execute(
        sa.update(posts)
        .where(posts.c.id == post.id)
        .values(
            name=env.name,
            summary=env.summary,
            content_html=env.content_html,
            sensitive=env.sensitive,
            raw=json.dumps(raw, separators=(",", ":")),
            updated_at=env.updated or utcnow(),
        )
    )


async def delete_post(conn: AsyncConnection, post: Post) -> None:
    """Leave a tombstone: content gone, the row kept for threading, our activities about it 410."""
    await conn.execute(
        sa.update(posts)
        .where(posts.c.id == post.id)
        .values(state="deleted", content_html="", name=None, summary=None, raw="{}", deleted_at=utcnow())
    )
    await outbound.tombstone_for_post(conn, post.id)
    if post.root_id is not None and post.state != "deleted":
        await conn.execute(sa.update(posts).where(posts.c.id == post.root_id).values(replies=posts.c.replies - 1))


async def set_state(conn: AsyncConnection, post: Post, state: str, *, reason: str | None = None) -> None:
    """Move a post to ``state`` (a removal keeps its ``reason``; any other state clears it)."""
    if state not in STATES or state == "deleted":  # a delete leaves a tombstone: ``delete_post``
        raise ValueError(f"cannot set state {state!r}")
    await conn.execute(
        sa.update(posts)
        .where(posts.c.id == post.id)
        .values(state=state, removed_reason=reason if state == "removed" else None)
    )


async def set_locked(conn: AsyncConnection, root_id: int, locked: bool) -> None:
    """Lock (no new replies) or unlock a thread, by its first post."""
    await conn.execute(sa.update(posts).where(posts.c.id == root_id).values(locked=locked))


async def set_pinned(conn: AsyncConnection, post_id: int, pinned: bool) -> None:
    """Pin a thread to the group's featured collection, or unpin it."""
    await conn.execute(sa.update(posts).where(posts.c.id == post_id).values(pinned_at=utcnow() if pinned else None))


async def remove_by_author(conn: AsyncConnection, group_id: int, author_id: int, reason: str) -> list[int]:
    """Remove every visible or held post of an author in a group (a ban with its content); their ids."""
    result = await conn.execute(
        sa.update(posts)
        .where(posts.c.group_id == group_id, posts.c.author_id == author_id, posts.c.state.in_(REMOVABLE))
        .values(state="removed", removed_reason=reason)
        .returning(posts.c.id)
    )
    return list(result.scalars().all())


async def suspend_by_authors(conn: AsyncConnection, author_ids: Sequence[int]) -> int:
    """Hide the visible posts of these authors (their origin was suspended), and our activities about them."""
    hidden = 0
    for i in range(0, len(author_ids), 500):
        ids = (
            (
                await conn.execute(
                    sa.update(posts)
                    .where(posts.c.author_id.in_(author_ids[i : i + 500]), posts.c.state == "visible")
                    .values(state="suspended")
                    .returning(posts.c.id)
                )
            )
            .scalars()
            .all()
        )
        hidden += len(ids)
    await outbound.set_hidden_for_posts(conn, sa.select(posts.c.id).where(posts.c.state == "suspended"), True)
    return hidden


async def unsuspend_except(conn: AsyncConnection, still_cut: set[int]) -> int:
    """Show again the suspended posts of authors no longer cut off (a block lifted); how many."""
    rows = (await conn.execute(sa.select(posts.c.id, posts.c.author_id).where(posts.c.state == "suspended"))).all()
    restore = [r.id for r in rows if r.author_id not in still_cut]
    for i in range(0, len(restore), 500):
        chunk = restore[i : i + 500]
        await conn.execute(sa.update(posts).where(posts.c.id.in_(chunk)).values(state="visible"))
        await outbound.set_hidden_for_posts(conn, chunk, False)
    return len(restore)


async def adjust_count(conn: AsyncConnection, post_id: int, column: str, delta: int) -> None:
    """Move one of a post's counters (``likes``, ``dislikes``) by ``delta``."""
    if column not in ("likes", "dislikes"):
        raise ValueError(f"no counter {column!r}")
    counter = posts.c[column]
    await conn.execute(sa.update(posts).where(posts.c.id == post_id).values({counter: counter + delta}))


async def count_visible(conn: AsyncConnection) -> int:
    """How many posts are shown, in every group (the instance's status count)."""
    query = sa.select(sa.func.count()).select_from(posts).where(posts.c.state == "visible")
    return int((await conn.execute(query)).scalar_one())


async def recent_counts(conn: AsyncConnection, group_id: int, author: RemoteActor) -> tuple[int, int, int]:
    """(member's posts in the last hour, their server's posts in the last hour, member's accepted posts).

    What the group's rate and first-post guards ask; one statement of three scalar subqueries.
    """
    since = utcnow() - timedelta(hours=1)
    member_hour = sa.select(sa.func.count()).where(
        posts.c.group_id == group_id, posts.c.author_id == author.id, posts.c.created_at > since
    )
    instance_hour = (
        sa.select(sa.func.count())
        .select_from(posts.join(remote_actors, remote_actors.c.id == posts.c.author_id))
        .where(posts.c.group_id == group_id, remote_actors.c.domain == author.domain, posts.c.created_at > since)
    )
    accepted = sa.select(sa.func.count()).where(
        posts.c.group_id == group_id, posts.c.author_id == author.id, posts.c.state == "visible"
    )
    row = (
        await conn.execute(
            sa.select(
                member_hour.scalar_subquery().label("member_hour"),
                instance_hour.scalar_subquery().label("instance_hour"),
                accepted.scalar_subquery().label("accepted"),
            )
        )
    ).one()
    return int(row.member_hour), int(row.instance_hour), int(row.accepted)


async def crowd_facts(
    conn: AsyncConnection, group_id: int, author: RemoteActor, root_id: int | None, since: datetime
) -> tuple[bool, int]:
    """(has the author's server a post shown in the group, the author's posts in thread ``root_id`` since ``since``).

    What crowd control asks of a post, in one statement. The first walks the server's
    known actors through ``ix_posts_author_recent`` and stops at the first shown post; the
    second reads the author's posts since ``since`` through the same index.
    """
    known = (
        sa.exists()
        .select_from(posts.join(remote_actors, remote_actors.c.id == posts.c.author_id))
        .where(remote_actors.c.domain == author.domain, posts.c.group_id == group_id, posts.c.state == "visible")
    )
    in_thread = sa.literal(0)
    if root_id is not None:
        in_thread = (
            sa.select(sa.func.count())
            .where(
                posts.c.author_id == author.id,
                posts.c.created_at > since,
                sa.or_(posts.c.root_id == root_id, posts.c.id == root_id),
            )
            .scalar_subquery()
        )
    row = (await conn.execute(sa.select(known.label("known"), in_thread.label("in_thread")))).one()
    return bool(row.known), int(row.in_thread)


async def record_tombstone(conn: AsyncConnection, db: Database, uri: str, *, actor_uri: str) -> None:
    """Remember ``actor_uri``'s Delete of an object we never had, so the actor's late Create cannot bring it back.

    The tombstone binds only the actor who sent the Delete: anyone on the object's server
    can send one before the object arrives, and only its author may thereby refuse it.
    One row per object: a later Delete by another actor takes the row over, so a
    neighbour's pre-emptive Delete cannot stand in the way of the author's own (which,
    overtaking the author's Create, is the case tombstones exist for). A row from before
    actors were recorded keeps blocking everyone (its actor is unknown) and is not taken over.
    """
    values = {"uri": uri, "actor_uri": actor_uri, "deleted_at": utcnow()}
    update = {"actor_uri": actor_uri, "deleted_at": values["deleted_at"]}
    await conn.execute(
        upsert(db.dialect, tombstones, ["uri"], values, update, where=tombstones.c.actor_uri.is_not(None))
    )


def seen_columns(
    uri: str | sa.BindParameter[str], author_uri: str | sa.BindParameter[str]
) -> list[sa.ColumnElement[bool]]:
    """``seen_post`` and ``seen_tombstone``: is ``uri`` stored, or deleted by ``author_uri`` before it came.

    Columns to fold into a query (intake asks both, with the author's row, in one statement).
    """
    return [
        sa.exists().where(posts.c.uri == uri).label("seen_post"),
        sa.exists()
        .where(
            tombstones.c.uri == uri,
            # NULL: recorded before revision 0007 kept the deleting actor. Any actor on the
            # object's server may have sent it, its author included, and which one is
            # unknown: it keeps refusing every Create, as every tombstone did then.
            sa.or_(tombstones.c.actor_uri == author_uri, tombstones.c.actor_uri.is_(None)),
        )
        .label("seen_tombstone"),
    ]
