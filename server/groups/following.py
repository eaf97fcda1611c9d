"""Follows of a group: accept, hold for a moderator, approve, reject, undo.

Each change and the activity that tells the follower about it are written in one
transaction, so a crash can never leave a member accepted without an Accept queued.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import BadRequest
from server.federation import activities
from server.federation.delivery import enqueue
from server.groups.membership import find_follow, get_group
from server.services import Services
from server.tables import follows
from server.types import utcnow

log = logging.getLogger("kith.following")


def inbox_of(actor: Any) -> str:
    """Where to deliver to an actor: its server's shared inbox when it has one."""
    return actor.shared_inbox or actor.inbox


async def _send(conn: AsyncConnection, services: Services, group: Any, activity: dict[str, Any], actor: Any) -> None:
    await enqueue(conn, services.db, activity=activity, actor_id=group.id, inboxes=[inbox_of(actor)])


async def receive_follow(services: Services, group: Any, actor: Any, follow: dict[str, Any]) -> str:
    """Record a Follow of ``group`` by remote ``actor``; returns the resulting state.

    Auto-approving groups accept at once. A repeated Follow is idempotent: an
    accepted member gets the Accept again (their server may have lost it), a
    pending one stays pending.
    """
    base = services.links.base
    group_uri = services.links.group(group.name)
    now = utcnow()
    async with services.db.transaction() as conn:
        existing = (
            await conn.execute(sa.select(follows).where(follows.c.group_id == group.id, follows.c.actor_id == actor.id))
        ).one_or_none()
        raw = json.dumps(follow, separators=(",", ":"))
        if existing is None:
            state = "accepted" if group.approval == "auto" else "pending"
            await conn.execute(
                sa.insert(follows).values(
                    group_id=group.id,
                    actor_id=actor.id,
                    activity_uri=follow["id"],
                    activity_raw=raw,
                    state=state,
                    created_at=now,
                    decided_at=now if state == "accepted" else None,
                )
            )
        else:
            state = existing.state
            await conn.execute(
                sa.update(follows)
                .where(follows.c.id == existing.id)
                .values(activity_uri=follow["id"], activity_raw=raw)
            )
        if state == "accepted":
            await _send(conn, services, group, activities.accept_follow(base, group_uri, follow), actor)
    return state


async def decide_follow(services: Services, group_name: str, actor_uri: str, *, approve: bool) -> str:
    """A moderator approves (Accept) or refuses (Reject) a pending follow."""
    actor = await services.actors.cached(actor_uri)
    async with services.db.transaction() as conn:
        group = await get_group(conn, group_name)
        row = await find_follow(conn, group.id, actor_uri)
        if row.state != "pending":
            raise BadRequest(f"{actor_uri} is already a member")
        follow = json.loads(row.activity_raw)
        group_uri = services.links.group(group.name)
        if approve:
            await conn.execute(
                sa.update(follows).where(follows.c.id == row.id).values(state="accepted", decided_at=utcnow())
            )
            activity = activities.accept_follow(services.links.base, group_uri, follow)
        else:
            await conn.execute(sa.delete(follows).where(follows.c.id == row.id))
            activity = activities.reject_follow(services.links.base, group_uri, follow)
        await _send(conn, services, group, activity, actor)
    return "accepted" if approve else "rejected"


async def undo_follow(services: Services, group: Any, actor: Any) -> bool:
    """Remove ``actor`` from ``group`` (their Undo(Follow)); True when they were there."""
    async with services.db.transaction() as conn:
        result = await conn.execute(
            sa.delete(follows).where(follows.c.group_id == group.id, follows.c.actor_id == actor.id)
        )
    return result.rowcount > 0
