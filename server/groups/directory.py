"""The instance's directory of groups (the home page): discoverable groups, a page at a time.

Only reads (``groups/membership`` owns the group rows, ``groups/following`` the members,
``groups/posts`` the posts). One statement per page, whatever the number of groups: last
week's posts and replies are counted in one grouped subquery over
``posts (created_at)`` (so sorting by activity ranks every group without a query per
group), and the members of only the page's groups by a correlated count
(``following.member_count_column``), which the database runs for the rows it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.groups.following import member_count_column
from server.rows import record
from server.tables import group_media, local_actors, posts

#: ``?sort=``: most posts and replies in the last 7 days first, or newest group first.
SORTS = ("active", "new")
PER_PAGE = 50
MAX_PAGE = 1000  # 50,000 groups deep: past that, an offset costs more than anyone reads
ACTIVITY_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Listing:
    """A group as the directory shows it."""

    id: int
    name: str
    title: str
    summary: str
    icon_type: str | None  # the avatar's content type and digest (group_media), when it has one
    icon_digest: str | None
    created_at: datetime
    members: int
    recent: int  # posts and replies shown on its page, taken in the last 7 days


_GROUPS = sa.and_(local_actors.c.kind == "group", local_actors.c.discoverable.is_(sa.true()))


def _recent(since: datetime) -> sa.Subquery:
    """Each group's visible posts and replies taken since ``since`` (groups with none are absent)."""
    return (
        sa.select(posts.c.group_id, sa.func.count().label("n"))
        .where(posts.c.created_at >= since, posts.c.state == "visible")
        .group_by(posts.c.group_id)
        .subquery("recent")
    )


async def listings(conn: AsyncConnection, *, sort: str, page: int, now: datetime) -> tuple[list[Listing], bool]:
    """Page ``page`` (1-based) of the discoverable groups sorted by ``sort``, and whether more follow."""
    recent = _recent(now - ACTIVITY_WINDOW)
    activity = sa.func.coalesce(recent.c.n, 0)
    newest = (local_actors.c.created_at.desc(), local_actors.c.id.desc())
    order = (activity.desc(), *newest) if sort == "active" else newest
    stmt = (
        sa.select(
            local_actors.c.id,
            local_actors.c.name,
            local_actors.c.title,
            local_actors.c.summary,
            group_media.c.content_type.label("icon_type"),
            group_media.c.digest.label("icon_digest"),
            local_actors.c.created_at,
            member_count_column(local_actors.c.id).label("members"),
            activity.label("recent"),
        )
        .select_from(
            local_actors.outerjoin(recent, recent.c.group_id == local_actors.c.id).outerjoin(
                group_media, sa.and_(group_media.c.group_id == local_actors.c.id, group_media.c.kind == "icon")
            )
        )
        .where(_GROUPS)
        .order_by(*order)
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE + 1)
    )
    rows = [record(Listing, r) for r in (await conn.execute(stmt)).all()]
    return rows[:PER_PAGE], len(rows) > PER_PAGE


async def count_listed(conn: AsyncConnection) -> int:
    """How many groups the directory lists."""
    return int((await conn.execute(sa.select(sa.func.count()).where(_GROUPS))).scalar_one())
