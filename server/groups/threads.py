"""Reading a group's threads: keyset-paged thread lists, their replies as trees, pins, held posts.

What the JSON API, the CLI and the moderation queue read of ``posts`` (owned and written by
``server.groups.posts``); the HTML pages read through their own tuned statements
(``server.web.queries``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.objects import poll_options
from server.groups.posts import AuthoredPost, Post
from server.rows import chunked, record
from server.tables import posts, remote_actors
from server.types import UTCDateTime

MAX_POST_ID = 2**31 - 1


@dataclass(frozen=True)
class Cursor:
    """A keyset position in a group's thread list: (last activity, id) of the last thread seen."""

    at: datetime
    id: int

    def encode(self) -> str:
        return f"{int(self.at.timestamp() * 1_000_000)}_{self.id}"

    @classmethod
    def decode(cls, value: str) -> Cursor | None:
        """The cursor ``encode`` wrote, or None for anything it could not have written."""
        try:
            micros, ident = value.split("_")
            cursor = cls(datetime.fromtimestamp(int(micros) / 1_000_000, UTC), int(ident))
        except (ValueError, OverflowError, OSError):
            return None
        # Ids are 32-bit on PostgreSQL, which refuses a larger bound outright (a 500, not a page).
        return cursor if 0 <= cursor.id <= MAX_POST_ID else None


_POST_COLUMNS = [
    *posts.c,
    remote_actors.c.preferred_username,
    remote_actors.c.domain.label("author_domain"),
    remote_actors.c.name.label("author_name"),
]


async def list_threads(
    conn: AsyncConnection, group_id: int, *, before: Cursor | None, limit: int
) -> list[AuthoredPost]:
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
    return [record(AuthoredPost, r) for r in (await conn.execute(query)).all()]


async def list_replies(
    conn: AsyncConnection, root_ids: list[int], *, per_thread: int = 200
) -> dict[int, list[AuthoredPost]]:
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
    out: dict[int, list[AuthoredPost]] = {i: [] for i in root_ids}
    for row in (await conn.execute(query)).all():
        if len(out[row.root_id]) < per_thread:
            out[row.root_id].append(record(AuthoredPost, row))
    return out


@dataclass(frozen=True, slots=True)
class ReplyNode:
    """A reply and the replies beneath it, oldest first."""

    post: AuthoredPost
    children: list[ReplyNode]


def nest(replies: list[AuthoredPost]) -> list[ReplyNode]:
    """Replies (oldest first) as a tree; a reply whose parent is not among them starts a branch."""
    nodes = {r.id: ReplyNode(r, []) for r in replies}
    roots: list[ReplyNode] = []
    for r in replies:
        parent = nodes.get(r.parent_id) if r.parent_id is not None else None
        (parent.children if parent is not None else roots).append(nodes[r.id])
    return roots


@dataclass(frozen=True, slots=True)
class Thread:
    """A thread's first post and its replies as a tree."""

    post: AuthoredPost
    replies: list[ReplyNode]


@dataclass(frozen=True)
class ThreadPage:
    """One page of a group's threads, each with its replies as a tree."""

    threads: list[Thread]
    next: Cursor | None


async def thread_page(conn: AsyncConnection, group_id: int, *, before: Cursor | None, limit: int = 20) -> ThreadPage:
    """A page of threads, newest activity first, and the cursor of the next page."""
    roots = await list_threads(conn, group_id, before=before, limit=limit + 1)
    more = len(roots) > limit
    roots = roots[:limit]
    replies = await list_replies(conn, [r.id for r in roots])
    threads = [Thread(r, nest(replies[r.id])) for r in roots]
    last = roots[-1] if roots else None
    return ThreadPage(threads, Cursor(last.last_activity_at, last.id) if more and last is not None else None)


def handle_of(post: AuthoredPost) -> str:
    """``@user@domain`` of a post's author, falling back to the author URI."""
    if post.preferred_username and post.author_domain:
        return f"@{post.preferred_username}@{post.author_domain}"
    return post.author_uri


def poll_results(post: Post | Any) -> list[tuple[str, int]]:
    """A poll's options and vote counts, as its origin last reported them.

    ``post`` is a ``Post`` or a page row with ``type``, ``state`` and ``raw``.
    """
    if post.type != "Question" or post.state != "visible":
        return []
    return poll_options(json.loads(post.raw))


async def list_pinned(conn: AsyncConnection, group_id: int) -> list[AuthoredPost]:
    """The group's pinned threads, most recently pinned first."""
    query = (
        sa.select(*_POST_COLUMNS)
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        .where(posts.c.group_id == group_id, posts.c.pinned_at.is_not(None), posts.c.state == "visible")
        .order_by(posts.c.pinned_at.desc())
    )
    return [record(AuthoredPost, r) for r in (await conn.execute(query)).all()]


async def held_oldest(conn: AsyncConnection, group_id: int, *, limit: int) -> list[AuthoredPost]:
    """Posts waiting for a moderator's approval, oldest first (the moderation queue)."""
    query = (
        sa.select(*_POST_COLUMNS)
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        .where(posts.c.group_id == group_id, posts.c.state == "held")
        .order_by(posts.c.created_at, posts.c.id)
        .limit(limit)
    )
    return [record(AuthoredPost, r) for r in (await conn.execute(query)).all()]


async def count_held(conn: AsyncConnection, group_id: int) -> int:
    """How many posts wait for a moderator's approval."""
    query = sa.select(sa.func.count()).where(posts.c.group_id == group_id, posts.c.state == "held")
    return int((await conn.execute(query)).scalar_one())


async def post_counts(conn: AsyncConnection, group_id: int, author_ids: list[int]) -> dict[int, int]:
    """How many visible posts each of these authors has in the group (the members page)."""
    counts: dict[int, int] = {}
    for chunk in chunked(author_ids):
        query = (
            sa.select(posts.c.author_id, sa.func.count())
            .where(posts.c.group_id == group_id, posts.c.author_id.in_(chunk), posts.c.state == "visible")
            .group_by(posts.c.author_id)
        )
        counts.update({row[0]: int(row[1]) for row in (await conn.execute(query)).all()})
    return counts


async def find_authored(conn: AsyncConnection, ids: list[int]) -> dict[int, AuthoredPost]:
    """Posts by id with their authors' names (a report's posts and their threads, for the console)."""
    found: dict[int, AuthoredPost] = {}
    for chunk in chunked(ids):
        query = (
            sa.select(*_POST_COLUMNS)
            .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
            .where(posts.c.id.in_(chunk))
        )
        found.update({r.id: record(AuthoredPost, r) for r in (await conn.execute(query)).all()})
    return found


async def held_posts(conn: AsyncConnection, group_id: int, *, max_id: int | None, limit: int) -> list[AuthoredPost]:
    """Posts waiting for a moderator's approval, newest first, older than ``max_id``."""
    query = (
        sa.select(*_POST_COLUMNS)
        .outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
        .where(posts.c.group_id == group_id, posts.c.state == "held")
        .order_by(posts.c.id.desc())
        .limit(limit)
    )
    if max_id is not None:
        query = query.where(posts.c.id < max_id)
    return [record(AuthoredPost, r) for r in (await conn.execute(query)).all()]
