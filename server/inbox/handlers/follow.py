"""Follow and Undo(Follow) of a group."""

from __future__ import annotations

import logging
from typing import Any

from server.errors import NotFound
from server.federation.vocab import id_of
from server.groups.following import find_follow_by_activity, receive_follow, undo_follow
from server.groups.membership import Group, get_group, get_group_by_id, group_name_from_uri
from server.inbox.store import InboxItem
from server.services import Services

log = logging.getLogger("kith.follow")


async def _group(services: Services, uri: str | None) -> Group | None:
    """Our group at ``uri``, or None."""
    name = group_name_from_uri(uri or "", services.links)
    if name is None:
        return None
    try:
        async with services.db.read() as conn:
            return await get_group(conn, name)
    except NotFound:
        return None


async def _followed(services: Services, activity: dict[str, Any], item: InboxItem) -> Group | None:
    """The group a Follow names: the one the inbox stored with it (it checked the object), else by its object."""
    target = id_of(activity.get("object"))
    if item.group_id is not None:
        try:
            async with services.db.read() as conn:
                group = await get_group_by_id(conn, item.group_id)
        except NotFound:
            return None  # deleted since
        # Rows stored before the inbox recorded the Follow's own group hold the inbox's group.
        if services.links.group(group.name) == target:
            return group
    return await _group(services, target)


async def on_follow(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """A remote actor asks to join a group."""
    group = await _followed(services, activity, item)
    if group is None:
        log.info("Follow %s of something that is not a group here", item.activity_uri)
        return
    actor = await services.actors.get(item.actor_uri)
    state = await receive_follow(services, group, actor, activity)
    log.info("%s follows %s: %s", actor.uri, group.name, state)


async def on_undo_follow(services: Services, undo: dict[str, Any], follow: Any, item: InboxItem) -> None:
    """A member leaves, or withdraws a pending request. Only the follower can undo their Follow."""
    if isinstance(follow, dict):
        if id_of(follow.get("actor")) != item.actor_uri:
            log.info("Undo %s of someone else's Follow ignored", item.activity_uri)
            return
        group = await _group(services, id_of(follow.get("object")))
    else:
        # Undo by reference only: find the group through the Follow's id we stored.
        async with services.db.read() as conn:
            found = await find_follow_by_activity(conn, follow, item.actor_uri)
            group = await get_group_by_id(conn, found.group_id) if found is not None else None
    if group is None:
        return
    actor = await services.actors.cached(item.actor_uri)
    if actor is not None and await undo_follow(services, group, actor):
        log.info("%s left %s", actor.uri, group.name)
