"""How a group is doing, for its moderators: the counts behind ``kith group stats`` and the
console's Stats tab. Only reads (``groups/posts``, ``groups/reactions`` and
``groups/following`` and ``groups/polls`` own these tables); ``groups/figures`` puts the counts together.

Every statement is bounded by the window (the last N ISO weeks, 12 by default, at most
52; 30 days for the active count) and by the group, through the indexes on
``posts (group_id, created_at)``, ``reactions (created_at)``, ``poll_votes (created_at)`` and
``membership_events (group_id, created_at)``: a group with a million posts reads only its
last weeks. Each kind of count is one ``GROUP BY`` over the window (``server.days``), not
a query per week. Times are when Kith took a post or a reaction (``created_at``), not the
``published`` its author's server claims.

*Active* means a person did something in the group: the ``ACTIVITY_SOURCES`` below.
A post removed by a moderator still counts (it was written); one its author deleted does
not. A *reply* to a thread counts for "got a reply" only when someone other than the
thread's author wrote it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.days import count_per_week
from server.groups.figures import (
    DEFAULT_WEEKS,
    GroupFigures,
    ThreadStart,
    assemble,
    monday_midnight,
    weeks_ending,
)
from server.groups.following import count_members
from server.groups.membership import Group
from server.instance import get_setting
from server.tables import membership_events, poll_votes, polls, posts, reactions
from server.types import utcnow

#: The ``instance_settings`` key the migration that added ``membership_events`` wrote: when
#: joins and leaves began to be recorded (leavers before then are unknown).
MEMBERSHIPS_SINCE_KEY = "membership_events_since"

_KEPT = posts.c.state != "deleted"  # deleted by its author: gone; removed by a moderator: it was written

#: One kind of activity in a group since a moment: a ``SELECT`` of ``at`` (when) and ``who``
#: (the actor's URI), bounded by the group and the moment so its index does the work.
ActivitySource = Callable[[int, datetime], sa.Select[Any]]


def posted(group_id: int, since: datetime) -> sa.Select[Any]:
    """Posts and replies written in the group."""
    return sa.select(posts.c.created_at.label("at"), posts.c.author_uri.label("who")).where(
        posts.c.group_id == group_id, posts.c.created_at >= since, _KEPT
    )


def reacted(group_id: int, since: datetime) -> sa.Select[Any]:
    """Likes, dislikes and emoji reactions to the group's posts."""
    return (
        sa.select(reactions.c.created_at.label("at"), reactions.c.actor_uri.label("who"))
        .join(posts, posts.c.id == reactions.c.post_id)
        .where(posts.c.group_id == group_id, reactions.c.created_at >= since)
    )


def voted(group_id: int, since: datetime) -> sa.Select[Any]:
    """Votes in the group's own polls (``groups/polls``)."""
    return (
        sa.select(poll_votes.c.created_at.label("at"), poll_votes.c.voter_uri.label("who"))
        .join(polls, polls.c.post_id == poll_votes.c.post_id)
        .where(polls.c.group_id == group_id, poll_votes.c.created_at >= since)
    )


#: What makes a person active in a group: each source's people are counted once, together.
ACTIVITY_SOURCES: tuple[ActivitySource, ...] = (posted, reacted, voted)


def activity(group_id: int, since: datetime) -> sa.CompoundSelect:
    """Every source's activity in the group since ``since``, as one ``UNION ALL``."""
    return sa.union_all(*(source(group_id, since) for source in ACTIVITY_SOURCES))


def messages(group_id: int, since: datetime) -> sa.Select[Any]:
    """Posts since ``since``, each with ``kind``: ``thread`` (a first post) or ``reply``."""
    kind = sa.case((posts.c.root_id.is_(None), "thread"), else_="reply")
    return sa.select(posts.c.created_at.label("at"), posts.c.id.label("who"), kind.label("kind")).where(
        posts.c.group_id == group_id, posts.c.created_at >= since, _KEPT
    )


def membership_changes(group_id: int, since: datetime) -> sa.Select[Any]:
    """Joins and leaves since ``since``, each with its ``kind`` (``joined``, ``left``, ``removed``)."""
    return sa.select(
        membership_events.c.created_at.label("at"),
        membership_events.c.actor_uri.label("who"),
        membership_events.c.kind,
    ).where(membership_events.c.group_id == group_id, membership_events.c.created_at >= since)


async def thread_starts(conn: AsyncConnection, group_id: int, since: datetime) -> list[ThreadStart]:
    """Threads begun since ``since``, each with its first reply by someone other than its author."""
    reply = posts.alias("reply")
    first_reply = (
        sa.select(sa.func.min(reply.c.created_at))
        .where(reply.c.root_id == posts.c.id, reply.c.author_uri != posts.c.author_uri, reply.c.state != "deleted")
        .scalar_subquery()
    )
    stmt = sa.select(posts.c.created_at, first_reply).where(
        posts.c.group_id == group_id, posts.c.created_at >= since, posts.c.root_id.is_(None), _KEPT
    )
    return [ThreadStart(started, first) for started, first in (await conn.execute(stmt)).all()]


async def active_people(conn: AsyncConnection, group_id: int, now: datetime) -> tuple[int, int]:
    """How many people were active in the group in the last 7 and the last 30 days, in one statement.

    Each person once with their latest moment (a hashed ``GROUP BY``), then counted twice;
    ``count(DISTINCT)`` would sort every row of the 30 days instead.
    """
    acts = activity(group_id, now - timedelta(days=30)).subquery()
    people = (
        sa.select(acts.c.who, sa.func.max(acts.c.at).label("last"))
        .where(acts.c.at <= now)
        .group_by(acts.c.who)
        .subquery()
    )
    week = sa.func.count().filter(people.c.last >= now - timedelta(days=7))
    seven, thirty = (await conn.execute(sa.select(week, sa.func.count()).select_from(people))).one()
    return int(seven), int(thirty)


async def memberships_since(conn: AsyncConnection) -> datetime | None:
    """When joins and leaves began to be recorded (None: unknown)."""
    raw = await get_setting(conn, MEMBERSHIPS_SINCE_KEY)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


async def group_figures(
    conn: AsyncConnection, group: Group, *, weeks: int = DEFAULT_WEEKS, now: datetime | None = None
) -> GroupFigures:
    """``group``'s figures over the last ``weeks`` ISO weeks up to ``now`` (the current one partial)."""
    now = now or utcnow()
    mondays = weeks_ending(now, weeks)
    start, end = monday_midnight(mondays[0]), now + timedelta(microseconds=1)
    gid = group.id
    active = await count_per_week(conn, activity(gid, start), start, end, distinct=True)
    active_7_days, active_30_days = await active_people(conn, gid, now)
    return assemble(
        group=group.name,
        now=now,
        mondays=mondays,
        members=await count_members(conn, gid),
        active_7_days=active_7_days,
        active_30_days=active_30_days,
        active={monday: n for (monday, _), n in active.items()},
        posts=await count_per_week(conn, messages(gid, start), start, end, by="kind"),
        memberships=await count_per_week(conn, membership_changes(gid, start), start, end, by="kind"),
        threads=[t for t in await thread_starts(conn, gid, start) if t.started < end],
        memberships_since=await memberships_since(conn),
    )
