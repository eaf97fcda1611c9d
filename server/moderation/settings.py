"""Loading and saving a group's guards and bans (the I/O beside the pure guards)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database, upsert
from server.errors import BadRequest
from server.moderation.guards import Guards
from server.tables import bans, group_guards, posts, remote_actors
from server.types import utcnow


async def load_guards(conn: AsyncConnection, group_id: int) -> Guards:
    row = (await conn.execute(sa.select(group_guards).where(group_guards.c.group_id == group_id))).one_or_none()
    if row is None:
        return Guards()
    return Guards(
        hold_first_posts=row.hold_first_posts,
        keywords=tuple(w.strip() for w in row.keywords.splitlines() if w.strip()),
        link_domains=tuple(d.strip().lower() for d in row.link_domains.splitlines() if d.strip()),
        filter_action=row.filter_action,
        member_posts_per_hour=row.member_posts_per_hour,
        instance_posts_per_hour=row.instance_posts_per_hour,
        max_group_mentions=row.max_group_mentions,
    )


GUARD_FIELDS = {
    "hold_first_posts": int,
    "keywords": list,
    "link_domains": list,
    "filter_action": str,
    "member_posts_per_hour": int,
    "instance_posts_per_hour": int,
    "max_group_mentions": int,
}


async def save_guards(conn: AsyncConnection, db: Database, group_id: int, changes: dict[str, Any]) -> Guards:
    """Change some guard settings; validated, the rest kept."""
    current = await load_guards(conn, group_id)
    values: dict[str, Any] = {
        "hold_first_posts": current.hold_first_posts,
        "keywords": "\n".join(current.keywords),
        "link_domains": "\n".join(current.link_domains),
        "filter_action": current.filter_action,
        "member_posts_per_hour": current.member_posts_per_hour,
        "instance_posts_per_hour": current.instance_posts_per_hour,
        "max_group_mentions": current.max_group_mentions,
    }
    for key, value in changes.items():
        kind = GUARD_FIELDS.get(key)
        if kind is None:
            raise BadRequest(f"unknown guard {key!r}")
        if kind is int:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
                raise BadRequest(f"{key} must be a whole number from 0 to 100000")
            values[key] = value
        elif kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 500:
                raise BadRequest(f"{key} must be a list of at most 500 strings")
            values[key] = "\n".join(v.strip() for v in value if v.strip())
        else:
            if value not in ("hold", "reject"):
                raise BadRequest("filter_action must be hold or reject")
            values[key] = value
    values["updated_at"] = utcnow()
    await conn.execute(upsert(db.dialect, group_guards, ["group_id"], {"group_id": group_id, **values}, values))
    return await load_guards(conn, group_id)


async def active_ban(conn: AsyncConnection, group_id: int, actor_uri: str) -> Any | None:
    """The actor's ban from the group, unless it has expired."""
    row = (
        await conn.execute(sa.select(bans).where(bans.c.group_id == group_id, bans.c.actor_uri == actor_uri))
    ).one_or_none()
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    return row


async def recent_counts(conn: AsyncConnection, group_id: int, author: Any) -> tuple[int, int, int]:
    """(member's posts in the last hour, their server's posts in the last hour, member's accepted posts)."""
    since = utcnow() - timedelta(hours=1)
    member_hour = (
        await conn.execute(
            sa.select(sa.func.count()).where(
                posts.c.group_id == group_id, posts.c.author_id == author.id, posts.c.created_at > since
            )
        )
    ).scalar_one()
    instance_hour = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(posts.join(remote_actors, remote_actors.c.id == posts.c.author_id))
            .where(posts.c.group_id == group_id, remote_actors.c.domain == author.domain, posts.c.created_at > since)
        )
    ).scalar_one()
    accepted = (
        await conn.execute(
            sa.select(sa.func.count()).where(
                posts.c.group_id == group_id, posts.c.author_id == author.id, posts.c.state == "visible"
            )
        )
    ).scalar_one()
    return int(member_hour), int(instance_hour), int(accepted)


async def known_group_uris(conn: AsyncConnection, uris: list[str]) -> frozenset[str]:
    """Which of these actor URIs we know to be groups."""
    if not uris:
        return frozenset()
    rows = await conn.execute(
        sa.select(remote_actors.c.uri).where(remote_actors.c.uri.in_(uris[:200]), remote_actors.c.type == "Group")
    )
    return frozenset(rows.scalars().all())
