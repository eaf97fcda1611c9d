"""What the admin dashboard counts of the communities: members, posts and reactions over time.

Mastodon's admin measures, dimensions and retention, and its weekly instance activity,
read for a group server: a server's *accounts* are its people who are members of a
group here, its *statuses* are their posts in our groups, *follows* and *followers*
are memberships (a group sends its posts to its members as Mastodon sends to
followers, and takes theirs as from follows), *users* are the members, *active* means
posted or reacted that day, and *interactions* are reactions and replies. This module
only reads (``groups/following``, ``groups/posts`` and ``groups/reactions`` write these
tables); the sources it builds are counted per day by ``server.days``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.actors import from_domain
from server.tables import follows, local_actors, posts, reactions, remote_actors

Source = sa.Select[Any] | sa.CompoundSelect

# When a membership began: on the Follow for an open group, on the approval for a manual one.
_joined = sa.func.coalesce(follows.c.decided_at, follows.c.created_at)
_KEPT = posts.c.state != "deleted"  # a post its author deleted no longer counts; removed ones still do


class Ranked(NamedTuple):
    """One line of a dimension: what (``key``, ``label``) and how many."""

    key: str
    label: str
    value: int


def _scoped(stmt: sa.Select[Any], domain: str | None, subdomains: bool) -> sa.Select[Any]:
    return stmt if domain is None else stmt.where(from_domain(domain, subdomains=subdomains))


def memberships(domain: str | None = None, *, subdomains: bool = False) -> Source:
    """Current memberships (accepted follows), by when each began; of ``domain``'s people when given."""
    stmt = (
        sa.select(_joined.label("at"), follows.c.id.label("who"))
        .select_from(follows.join(remote_actors, remote_actors.c.id == follows.c.actor_id))
        .where(follows.c.state == "accepted")
    )
    return _scoped(stmt, domain, subdomains)


def members(domain: str | None = None, *, subdomains: bool = False) -> Source:
    """The people who are members of at least one group, each dated by their first current membership."""
    stmt = (
        sa.select(sa.func.min(_joined).label("at"), follows.c.actor_id.label("who"))
        .select_from(follows.join(remote_actors, remote_actors.c.id == follows.c.actor_id))
        .where(follows.c.state == "accepted")
        .group_by(follows.c.actor_id)
    )
    return _scoped(stmt, domain, subdomains)


def group_posts(domain: str | None = None, *, subdomains: bool = False) -> Source:
    """Posts and comments in our groups (not deleted), by when Kith took them; of ``domain``'s authors when given."""
    stmt = sa.select(posts.c.created_at.label("at"), posts.c.id.label("who")).where(_KEPT)
    if domain is None:
        return stmt
    joined = stmt.select_from(posts.join(remote_actors, remote_actors.c.id == posts.c.author_id))
    return _scoped(joined, domain, subdomains)


def participants() -> Source:
    """Who posted or reacted, and when (counted with ``distinct``: active people)."""
    wrote = sa.select(posts.c.created_at.label("at"), posts.c.author_uri.label("who")).where(_KEPT)
    reacted = sa.select(reactions.c.created_at.label("at"), reactions.c.actor_uri.label("who"))
    return sa.union_all(wrote, reacted)


def interactions() -> Source:
    """Reactions to posts in our groups and replies within them."""
    replied = sa.select(posts.c.created_at.label("at"), posts.c.id.label("who")).where(
        _KEPT, posts.c.in_reply_to.is_not(None)
    )
    reacted = sa.select(reactions.c.created_at.label("at"), reactions.c.id.label("who"))
    return sa.union_all(reacted, replied)


async def servers(conn: AsyncConnection, start: datetime, end: datetime, limit: int) -> list[Ranked]:
    """The servers whose people posted most in ``[start, end)``."""
    count = sa.func.count()
    stmt = (
        sa.select(remote_actors.c.domain, count)
        .select_from(posts.join(remote_actors, remote_actors.c.id == posts.c.author_id))
        .where(_KEPT, posts.c.created_at >= start, posts.c.created_at < end)
        .group_by(remote_actors.c.domain)
        .order_by(count.desc(), remote_actors.c.domain)
        .limit(limit)
    )
    return [Ranked(str(d), str(d), int(n)) for d, n in (await conn.execute(stmt)).all()]


async def joins_by_group(conn: AsyncConnection, start: datetime, end: datetime, limit: int) -> list[Ranked]:
    """The groups that gained most members in ``[start, end)`` (where people came in by)."""
    count = sa.func.count()
    stmt = (
        sa.select(local_actors.c.name, local_actors.c.title, count)
        .select_from(follows.join(local_actors, local_actors.c.id == follows.c.group_id))
        .where(follows.c.state == "accepted", _joined >= start, _joined < end)
        .group_by(local_actors.c.name, local_actors.c.title)
        .order_by(count.desc(), local_actors.c.name)
        .limit(limit)
    )
    return [Ranked(str(name), str(title or name), int(n)) for name, title, n in (await conn.execute(stmt)).all()]


async def members_of_domain(conn: AsyncConnection, domain: str, *, subdomains: bool, limit: int) -> list[Ranked]:
    """``domain``'s people here, those in most groups first (Mastodon: its most followed accounts)."""
    count = sa.func.count(follows.c.id)
    name = sa.func.coalesce(remote_actors.c.preferred_username, remote_actors.c.uri)
    stmt = (
        sa.select(name, count)
        .select_from(
            remote_actors.outerjoin(
                follows, sa.and_(follows.c.actor_id == remote_actors.c.id, follows.c.state == "accepted")
            )
        )
        .where(from_domain(domain, subdomains=subdomains))
        .group_by(remote_actors.c.id, name)
        .having(count > 0)
        .order_by(count.desc(), name)
        .limit(limit)
    )
    return [Ranked(str(n), str(n), int(v)) for n, v in (await conn.execute(stmt)).all()]


async def cohort(conn: AsyncConnection, start: datetime, end: datetime) -> list[tuple[datetime, datetime | None]]:
    """Members who first joined in ``[start, end)``: when they joined and when they last posted or reacted."""
    first = members().subquery()
    acted = participants().subquery()
    stmt = (
        sa.select(first.c.at, sa.func.max(acted.c.at))
        .select_from(
            first.join(remote_actors, remote_actors.c.id == first.c.who).outerjoin(
                acted, acted.c.who == remote_actors.c.uri
            )
        )
        .where(first.c.at >= start, first.c.at < end)
        .group_by(first.c.who, first.c.at)
    )
    return [(joined, last) for joined, last in (await conn.execute(stmt)).all()]
