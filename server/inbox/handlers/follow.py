"""Follow and Undo(Follow) of a group."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from server.errors import NotFound
from server.federation.vocab import id_of
from server.groups.following import receive_follow, undo_follow
from server.groups.membership import get_group, get_group_by_id, group_name_from_uri
from server.services import Services
from server.tables import follows, remote_actors

log = logging.getLogger("kith.follow")


async def _group(services: Services, uri: str | None) -> Any | None:
    name = group_name_from_uri(uri or "", services.links)
    if name is None:
        return None
    try:
        async with services.db.read() as conn:
            return await get_group(conn, name)
    except NotFound:
        return None


async def on_follow(services: Services, activity: dict[str, Any], item: Any) -> None:
    """A remote actor asks to join a group."""
    group = await _group(services, id_of(activity.get("object")))
    if group is None:
        log.info("Follow %s of something that is not a group here", item.activity_uri)
        return
    actor = await services.actors.get(item.actor_uri)
    state = await receive_follow(services, group, actor, activity)
    log.info("%s follows %s: %s", actor.uri, group.name, state)


async def on_undo_follow(services: Services, undo: dict[str, Any], follow: Any, item: Any) -> None:
    """A member leaves, or withdraws a pending request. Only the follower can undo their Follow."""
    if isinstance(follow, dict):
        if id_of(follow.get("actor")) != item.actor_uri:
            log.info("Undo %s of someone else's Follow ignored", item.activity_uri)
            return
        group = await _group(services, id_of(follow.get("object")))
    else:
        # Undo by reference only: find the group through the Follow's id we stored.
        async with services.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(follows.c.group_id)
                    .join(remote_actors, remote_actors.c.id == follows.c.actor_id)
                    .where(follows.c.activity_uri == follow, remote_actors.c.uri == item.actor_uri)
                )
            ).first()
        group = None
        if row is not None:
            async with services.db.read() as conn:
                group = await get_group_by_id(conn, row.group_id)
    if group is None:
        return
    actor = await services.actors.cached(item.actor_uri)
    if actor is not None and await undo_follow(services, group, actor):
        log.info("%s left %s", actor.uri, group.name)
