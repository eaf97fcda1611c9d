"""Likes, dislikes and emoji reactions, one per (post, actor, kind, emoji): the owner of ``reactions``.

A Like or Dislike also moves its post's counter (through ``server.groups.posts``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db import Database
from server.groups.posts import Post, adjust_count
from server.tables import posts, reactions
from server.types import utcnow

REACTION_COLUMN = {"Like": "likes", "Dislike": "dislikes"}


async def add_reaction(
    conn: AsyncConnection, db: Database, post: Post, *, actor_uri: str, kind: str, emoji: str, activity_uri: str
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
        await adjust_count(conn, post.id, REACTION_COLUMN[kind], +1)
    return added


async def remove_reaction(
    conn: AsyncConnection, *, activity_uri: str, actor_uri: str, object_uri: str | None = None, kind: str | None = None
) -> int | None:
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
        await adjust_count(conn, row.post_id, REACTION_COLUMN[row.kind], -1)
    return row.post_id
