"""The reads behind the group's HTML page: few statements, on the one connection the page checks out.

The statements are built once, at import, with their values bound per request: building
a SQLAlchemy statement costs more Python than running it. They select only what the
page shows (``POST_COLUMNS``), which the views unpack by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import Gone, NotFound
from server.groups.following import member_count_column
from server.groups.media import MediaRef, media_of
from server.groups.membership import Group
from server.groups.threads import Cursor
from server.local_actors import PUBLIC_COLUMNS
from server.moderation.authority import moderator_names
from server.rows import record
from server.tables import local_actors, posts, remote_actors
from server.types import UTCDateTime

THREADS_PER_PAGE = 20
# The page previews a thread: its first replies, and a link to the whole thread beyond
# them. Without a cap one busy thread (thousands of replies) would make the page as slow
# as rendering all of them; Lemmy's listing shows no replies at all.
REPLIES_PER_THREAD = 5
# As server.groups.threads.list_replies: tombstones (deleted, removed) keep the tree whole;
# held and suspended replies are not shown at all.
SHOWN_REPLY_STATES = ("visible", "deleted", "removed")

# What the page shows of a post, in the order server.web.views.post_view unpacks it.
POST_COLUMNS = [
    posts.c.id,
    posts.c.root_id,
    posts.c.parent_id,
    posts.c.state,
    posts.c.removed_reason,
    posts.c.author_uri,
    remote_actors.c.name.label("author_name"),
    remote_actors.c.preferred_username,
    remote_actors.c.domain.label("author_domain"),
    posts.c.url,
    posts.c.uri,
    posts.c.published,
    posts.c.last_activity_at,
    posts.c.name,
    posts.c.summary,
    posts.c.content_html,
    posts.c.type,
    # Only a poll needs the raw object (its options and counts): skip everyone else's.
    sa.case((posts.c.type == "Question", posts.c.raw), else_=sa.null()).label("raw"),
    posts.c.likes,
    posts.c.dislikes,
    posts.c.replies,
    posts.c.pinned_at,
    posts.c.locked,
]


ROOT, REPLY, PINNED = "root", "reply", "pinned"  # the parts of the page's one statement

PageRow = sa.Row[Any]
"""A row of ``POST_COLUMNS`` (plus a ``part``): the page reads them by position, for speed."""


def _posts_query(part: str) -> sa.Select[Any]:
    """Posts with their authors' names, marked as one ``part`` of the page."""
    return sa.select(*POST_COLUMNS, sa.literal_column(f"'{part}'").label("part")).outerjoin(
        remote_actors, remote_actors.c.id == posts.c.author_id
    )


def _group_query() -> sa.Select[Any]:
    """The group by name, with its member count (as server.groups.membership.count_members)."""
    members = member_count_column(local_actors.c.id)
    return sa.select(*PUBLIC_COLUMNS, members.label("members")).where(
        local_actors.c.name == sa.bindparam("name"), local_actors.c.kind == "group"
    )


def _threads_query(*, paged: bool, dialect: str) -> sa.CompoundSelect:
    """A page of thread roots (as server.groups.threads.list_threads), each one's first replies
    and, on the first page (not ``paged``), the pinned threads (as server.groups.threads.list_pinned).

    One statement, one round trip: the roots as a CTE, their replies ranked by a window
    over the root index (a busy thread's other replies never leave the database). The
    ``part`` column tells the three apart.
    """
    roots = (
        sa.select(posts.c.id)
        .where(posts.c.group_id == sa.bindparam("group_id"), posts.c.root_id.is_(None), posts.c.state == "visible")
        .order_by(posts.c.last_activity_at.desc(), posts.c.id.desc())
        .limit(sa.bindparam("limit"))
    )
    if paged:
        # A row-value comparison, which the index can serve (an OR of the two would be filtered).
        at = sa.bindparam("before_at", type_=UTCDateTime())
        roots = roots.where(sa.tuple_(posts.c.last_activity_at, posts.c.id) < sa.tuple_(at, sa.bindparam("before_id")))
    roots_cte = roots.cte("roots")
    ranked = sa.select(
        posts.c.id,
        sa.func.row_number().over(partition_by=posts.c.root_id, order_by=(posts.c.published, posts.c.id)).label("rank"),
    ).where(posts.c.state.in_(SHOWN_REPLY_STATES))
    if dialect == "sqlite":
        # ``root_id IN (the roots)``: with the join SQLite ranks the replies by walking ix_posts_root
        # from end to end (every reply in the database: 37 ms at 20,000 posts on a quiet machine) to
        # save a sort; the IN list makes it look each root's replies up in that index, as
        # PostgreSQL does with the join (which measured a little faster there than the IN list).
        ranked = ranked.where(posts.c.root_id.in_(sa.select(roots_cte.c.id)))
    else:
        ranked = ranked.join(roots_cte, roots_cte.c.id == posts.c.root_id)
    ranked = ranked.cte("ranked")
    parts = [
        _posts_query(ROOT).join(roots_cte, roots_cte.c.id == posts.c.id),
        _posts_query(REPLY).join(ranked, ranked.c.id == posts.c.id).where(ranked.c.rank <= sa.bindparam("per_thread")),
    ]
    if not paged:
        # The partial index ix_posts_pinned finds these among millions.
        parts.append(
            _posts_query(PINNED).where(
                posts.c.group_id == sa.bindparam("group_id"), posts.c.pinned_at.is_not(None), posts.c.state == "visible"
            )
        )
    return sa.union_all(*parts)


_GROUP = _group_query()
# By dialect (the statements differ in how the replies find their roots: see _threads_query).
_THREADS = {d: _threads_query(paged=False, dialect=d) for d in ("postgresql", "sqlite")}
_THREADS_BEFORE = {d: _threads_query(paged=True, dialect=d) for d in ("postgresql", "sqlite")}


@dataclass(frozen=True)
class ThreadRows:
    """The posts of one page of threads, by part."""

    roots: list[PageRow]  # newest activity first
    replies: dict[int, list[PageRow]]  # root id -> its first replies, oldest first
    pinned: list[PageRow]  # most recently pinned first; only without ``before``


async def thread_rows(
    conn: AsyncConnection, group_id: int, *, before: Cursor | None, limit: int, per_thread: int
) -> ThreadRows:
    """Up to ``limit`` thread roots after ``before`` with up to ``per_thread`` replies each,
    and the pinned threads when there is no ``before``."""
    params: dict[str, Any] = {"group_id": group_id, "limit": limit, "per_thread": per_thread}
    if before is not None:
        params.update(before_at=before.at, before_id=before.id)
    statements = _THREADS if before is None else _THREADS_BEFORE
    rows = (await conn.execute(statements[conn.dialect.name], params)).all()
    parts: dict[str, list[PageRow]] = {ROOT: [], REPLY: [], PINNED: []}
    for row in rows:
        parts[row.part].append(row)
    # A UNION ALL keeps no order across its parts: sort each here (a few dozen rows).
    roots = sorted(parts[ROOT], key=lambda r: (r.last_activity_at, r.id), reverse=True)
    replies: dict[int, list[PageRow]] = {r.id: [] for r in roots}
    for row in sorted(parts[REPLY], key=lambda r: (r.published, r.id)):
        replies[row.root_id].append(row)
    pinned = sorted(parts[PINNED], key=lambda r: r.pinned_at, reverse=True)
    return ThreadRows(roots, replies, pinned)


@dataclass(frozen=True)
class GroupPage:
    """Everything the group's HTML page shows, read in one unit of work."""

    group: Group
    members: int
    leaders: list[tuple[str, str]]
    roots: list[PageRow]  # thread roots, newest activity first
    replies: dict[int, list[PageRow]]  # root id -> its first replies, oldest first (one more than shown)
    pinned: list[PageRow]  # the first page only
    next: Cursor | None
    media: dict[str, MediaRef]  # the avatar (icon) and header (image) it has


async def load_group_page(
    conn: AsyncConnection,
    name: str,
    *,
    before: Cursor | None,
    threads: int = THREADS_PER_PAGE,
    replies: int = REPLIES_PER_THREAD,
) -> GroupPage:
    """The group called ``name`` and one page of its threads (``NotFound`` if there is none).

    One connection for all of it (each checkout costs a pool round and a reset, and one
    snapshot keeps the page consistent), and four statements.
    """
    found = (await conn.execute(_GROUP, {"name": name})).one_or_none()
    if found is None:
        raise NotFound(f"no group named {name!r}")
    group = record(Group, found)
    leaders = await moderator_names(conn, group.id)
    # One more root than shown tells whether there is a next page; one more reply, whether
    # the page should link to the rest of the thread.
    rows = await thread_rows(conn, group.id, before=before, limit=threads + 1, per_thread=replies + 1)
    roots = rows.roots[:threads]
    last = roots[-1] if roots else None
    cursor = Cursor(last.last_activity_at, last.id) if len(rows.roots) > threads and last is not None else None
    media = await media_of(conn, group.id)
    return GroupPage(group, found.members, leaders, roots, rows.replies, rows.pinned, cursor, media)


# The thread page shows a whole thread, but one thread can hold tens of thousands of replies
# (a flame war, a bot): past this many it shows the first ones and says so, so that no
# thread costs more than this to read and render.
REPLIES_PER_THREAD_PAGE = 500
# Post ids are 32-bit on PostgreSQL: a larger number in a URL would be a database error.
MAX_POST_ID = 2**31 - 1


def _thread_root_query() -> sa.Select[Any]:
    """The group by name and, beside it, the post by id (whatever its group, state or depth).

    One round trip for both: ``local_actors LEFT JOIN posts`` gives the group alone when
    there is no such post, and nothing when there is no such group. The post's own group
    and state come back so the page can tell "not in this group" and "deleted" apart.
    """
    post_and_author = posts.outerjoin(remote_actors, remote_actors.c.id == posts.c.author_id)
    return (
        sa.select(
            *POST_COLUMNS,  # first: server.web.views.post_view unpacks them by position
            posts.c.group_id.label("post_group_id"),
            local_actors.c.id.label("group_id"),
            local_actors.c.name.label("group_name"),
            local_actors.c.title.label("group_title"),
        )
        .select_from(local_actors.outerjoin(post_and_author, posts.c.id == sa.bindparam("post_id")))
        .where(local_actors.c.name == sa.bindparam("name"), local_actors.c.kind == "group")
    )


def _thread_replies_query() -> sa.Select[Any]:
    """A thread's replies, oldest first, tombstones included, held and suspended ones left out."""
    return (
        _posts_query(REPLY)
        .where(posts.c.root_id == sa.bindparam("root_id"), posts.c.state.in_(SHOWN_REPLY_STATES))
        .order_by(posts.c.published, posts.c.id)  # ix_posts_root serves both the filter and the order
        .limit(sa.bindparam("limit"))
    )


_THREAD_ROOT = _thread_root_query()
_THREAD_REPLIES = _thread_replies_query()


def thread_path(group: str, root_id: int) -> str:
    """The path of a thread's page (a group name is ``[a-z0-9_]``: nothing to quote)."""
    return f"/groups/{group}/threads/{root_id}"


@dataclass(frozen=True)
class ThreadPage:
    """Everything the thread page shows, read in one unit of work."""

    group_name: str
    group_title: str
    root: PageRow  # the root post
    replies: list[PageRow]  # oldest first, at most ``limit``
    truncated: bool  # the thread has more replies than ``replies`` holds


def _check_root(name: str, post_id: int, row: PageRow | None) -> None:
    """Raise unless ``row`` (from ``_THREAD_ROOT``) is a thread root of group ``name`` that may be shown.

    Held and suspended posts answer exactly as unknown ids do, so the page does not reveal
    that they exist; deleted and removed ones answer 410, as the group's Announces of them do.
    """
    if row is None:
        raise NotFound(f"no group named {name!r}")
    if row.id is None or row.post_group_id != row.group_id or row.state in ("held", "suspended"):
        raise NotFound(f"no post {post_id} in group {name!r}")
    if row.root_id is not None:
        raise NotFound(
            f"post {post_id} is a reply, not the first post of a thread: see {thread_path(name, row.root_id)}"
        )
    if row.state == "deleted":
        raise Gone(f"thread {post_id} was deleted by its author")
    if row.state == "removed":
        raise Gone(f"thread {post_id} was removed by the group's moderators")


async def load_thread_page(
    conn: AsyncConnection, name: str, post_id: int, *, limit: int = REPLIES_PER_THREAD_PAGE
) -> ThreadPage:
    """Group ``name``'s thread that starts with post ``post_id``, and its first ``limit`` replies.

    ``NotFound`` for no such group or post, a post of another group, a reply, or a post
    nobody may see (held, suspended); ``Gone`` for a deleted or removed thread. Two
    statements on the caller's one connection.
    """
    row = (await conn.execute(_THREAD_ROOT, {"name": name, "post_id": post_id})).one_or_none()
    _check_root(name, post_id, row)
    # One more than shown tells whether the thread goes on.
    replies = list((await conn.execute(_THREAD_REPLIES, {"root_id": post_id, "limit": limit + 1})).all())
    return ThreadPage(row.group_name, row.group_title, row, replies[:limit], len(replies) > limit)
