"""Threads, posts, reactions and tombstones of a group; keyset-paged reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.objects import PostEnvelope, poll_options
from server.tables import outbound_activities, posts, reactions, remote_actors, tombstones
from server.types import UTCDateTime, utcnow

REACTION_COLUMN = {"Like": "likes", "Dislike": "dislikes"}


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


async def find_post(conn: AsyncConnection, uri: str) -> Any | None:
    """The post stored under ``uri``, or None."""
    return (await conn.execute(_FIND_POST, {"uri": uri})).one_or_none()


async def find_post_by_id(conn: AsyncConnection, post_id: int) -> Any | None:
    """The post with this id, or None."""
    return (await conn.execute(_FIND_POST_BY_ID, {"post_id": post_id})).one_or_none()


async def insert_post(
    conn: AsyncConnection,
    *,
    group_id: int,
    env: PostEnvelope,
    raw: dict[str, Any],
    author_id: int | None,
    parent: Any | None,
    state: str = "visible",
) -> Any:
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
        "raw": json.dumps(raw, separators=(",", ":")),
        "published": published,
        "last_activity_at": published,
        "created_at": now,
    }
    row = (await conn.execute(_INSERT_POST, values)).one()
    if root_id is not None and state == "visible":
        await conn.execute(_BUMP_ROOT[conn.dialect.name], {"thread_root": root_id, "reply_published": published})
    return row


async def update_post(conn: AsyncConnection, post: Any, env: PostEnvelope, raw: dict[str, Any]) -> None:
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


async def delete_post(conn: AsyncConnection, post: Any) -> None:
    """Leave a tombstone: content gone, the row kept for threading, our Announces of it 410."""
    now = utcnow()
    await conn.execute(
        sa.update(posts)
        .where(posts.c.id == post.id)
        .values(state="deleted", content_html="", name=None, summary=None, raw="{}", deleted_at=now)
    )
    await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id == post.id, outbound_activities.c.deleted_at.is_(None))
        .values(deleted_at=now)
    )
    if post.root_id is not None and post.state != "deleted":
        await conn.execute(sa.update(posts).where(posts.c.id == post.root_id).values(replies=posts.c.replies - 1))


async def record_tombstone(conn: AsyncConnection, db: Any, uri: str) -> None:
    """Remember the Delete of an object we never had, so its late Create cannot bring it back."""
    await conn.execute(db.insert_ignore(tombstones, ["uri"]).values(uri=uri, deleted_at=utcnow()))


def seen_columns(uri: str | sa.BindParameter[str]) -> list[sa.ColumnElement[bool]]:
    """``seen_post`` and ``seen_tombstone``: is ``uri`` stored, or deleted before it came; to fold into a query."""
    return [
        sa.exists().where(posts.c.uri == uri).label("seen_post"),
        sa.exists().where(tombstones.c.uri == uri).label("seen_tombstone"),
    ]


async def add_reaction(
    conn: AsyncConnection, db: Any, post: Any, *, actor_uri: str, kind: str, emoji: str, activity_uri: str
) -> bool:
    """Count a Like/Dislike/EmojiReact once per actor; False when it was already counted."""
    stmt = db.insert_ignore(reactions, ["post_id", "actor_uri", "kind", "emoji"]).values(
        post_id=post.id,
        actor_uri=actor_uri,
        kind=kind,
        emoji=emoji[:64],
        activity_uri=activity_uri,
        created_at=utcnow(),
    )
    added = (await conn.execute(stmt)).rowcount > 0
    if added and kind in REACTION_COLUMN:
        column = posts.c[REACTION_COLUMN[kind]]
        await conn.execute(sa.update(posts).where(posts.c.id == post.id).values({column: column + 1}))
    return added


async def remove_reaction(
    conn: AsyncConnection, *, activity_uri: str, actor_uri: str, object_uri: str | None = None, kind: str | None = None
) -> Any | None:
    """Withdraw a reaction, found by the id of the activity that made it or, failing that,
    by what it was (actor, post, kind); returns its post id, if any."""
    row = (
        await conn.execute(
            sa.select(reactions).where(reactions.c.activity_uri == activity_uri, reactions.c.actor_uri == actor_uri)
        )
    ).one_or_none()
    if row is None and object_uri and kind:
        row = (
            await conn.execute(
                sa.select(reactions)
                .join(posts, posts.c.id == reactions.c.post_id)
                .where(posts.c.uri == object_uri, reactions.c.actor_uri == actor_uri, reactions.c.kind == kind)
            )
        ).first()
    if row is None:
        return None
    await conn.execute(sa.delete(reactions).where(reactions.c.id == row.id))
    if row.kind in REACTION_COLUMN:
        column = posts.c[REACTION_COLUMN[row.kind]]
        await conn.execute(sa.update(posts).where(posts.c.id == row.post_id).values({column: column - 1}))
    return row.post_id


@dataclass(frozen=True)
class Cursor:
    """A keyset position in a group's thread list: (last activity, id) of the last thread seen."""

    at: datetime
    id: int

    def encode(self) -> str:
        return f"{int(self.at.timestamp() * 1_000_000)}_{self.id}"

    @classmethod
    def decode(cls, value: str) -> Cursor | None:
        try:
            micros, ident = value.split("_")
            return cls(datetime.fromtimestamp(int(micros) / 1_000_000, UTC), int(ident))
        except (ValueError, OverflowError, OSError):
            return None


_POST_COLUMNS = [
    *posts.c,
    remote_actors.c.preferred_username,
    remote_actors.c.domain.label("author_domain"),
    remote_actors.c.name.label("author_name"),
]


async def list_threads(conn: AsyncConnection, group_id: int, *, before: Cursor | None, limit: int) -> list[Any]:
    """Thread roots, newest activity first, after ``before`` (keyset pagination)."""
    query = (
        sa.select(*_POST_COLUMNS)
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        .where(posts.c.group_id == group_id, posts.c.root_id.is_(None), posts.c.state == "visible")
        .order_by(posts.c.last_activity_at.desc(), posts.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        # A row-value comparison, which the index can serve (an OR of the two would be filtered).
        at = sa.bindparam("before_at", before.at, type_=UTCDateTime())
        query = query.where(sa.tuple_(posts.c.last_activity_at, posts.c.id) < sa.tuple_(at, before.id))
    return list((await conn.execute(query)).all())


async def list_replies(conn: AsyncConnection, root_ids: list[int], *, per_thread: int = 200) -> dict[int, list[Any]]:
    """The replies of each thread, oldest first."""
    if not root_ids:
        return {}
    query = (
        sa.select(*_POST_COLUMNS)
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        # Tombstones (deleted, removed) keep the tree whole; held and suspended replies are not shown at all.
        .where(posts.c.root_id.in_(root_ids), posts.c.state.in_(("visible", "deleted", "removed")))
        .order_by(posts.c.published, posts.c.id)
    )
    out: dict[int, list[Any]] = {i: [] for i in root_ids}
    for row in (await conn.execute(query)).all():
        if len(out[row.root_id]) < per_thread:
            out[row.root_id].append(row)
    return out


def nest(replies: list[Any]) -> list[dict[str, Any]]:
    """Replies as a tree: each node ``{"post": row, "children": [...]}``, oldest first."""
    nodes = {r.id: {"post": r, "children": []} for r in replies}
    roots: list[dict[str, Any]] = []
    for r in replies:
        parent = nodes.get(r.parent_id)
        (parent["children"] if parent is not None else roots).append(nodes[r.id])
    return roots


@dataclass(frozen=True)
class ThreadPage:
    """One page of a group's threads, each with its replies as a tree."""

    threads: list[dict[str, Any]]  # {"post": row, "replies": [node...]}
    next: Cursor | None


async def thread_page(conn: AsyncConnection, group_id: int, *, before: Cursor | None, limit: int = 20) -> ThreadPage:
    """A page of threads, newest activity first, and the cursor of the next page."""
    roots = await list_threads(conn, group_id, before=before, limit=limit + 1)
    more = len(roots) > limit
    roots = roots[:limit]
    replies = await list_replies(conn, [r.id for r in roots])
    threads = [{"post": r, "replies": nest(replies[r.id])} for r in roots]
    last = roots[-1] if roots else None
    return ThreadPage(threads, Cursor(last.last_activity_at, last.id) if more and last is not None else None)


def handle_of(post: Any) -> str:
    """``@user@domain`` of a post's author, falling back to the author URI."""
    if getattr(post, "preferred_username", None) and getattr(post, "author_domain", None):
        return f"@{post.preferred_username}@{post.author_domain}"
    return post.author_uri


def poll_results(post: Any) -> list[tuple[str, int]]:
    """A poll's options and vote counts, as its origin last reported them."""
    if post.type != "Question" or post.state != "visible":
        return []
    return poll_options(json.loads(post.raw))


async def list_pinned(conn: AsyncConnection, group_id: int) -> list[Any]:
    """The group's pinned threads, most recently pinned first."""
    query = (
        sa.select(*_POST_COLUMNS)
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        .where(posts.c.group_id == group_id, posts.c.pinned_at.is_not(None), posts.c.state == "visible")
        .order_by(posts.c.pinned_at.desc())
    )
    return list((await conn.execute(query)).all())
