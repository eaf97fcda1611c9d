"""Moderation activities from remote moderators: Lock, Block (with the group as target), Add, Remove.

Accepted only under FEP-1b12's authority rule: from an actor listed in the group's
moderators collection. Anyone else's (a foreign server's Block, a stranger's Lock) is
refused and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from server.errors import KithError
from server.federation.vocab import id_of, ids_of
from server.groups.membership import Group, get_group, get_group_by_id, group_name_from_uri
from server.groups.posts import find_post
from server.inbox.store import InboxItem
from server.moderation import actions
from server.services import Services

log = logging.getLogger("kith.moderation.inbox")


async def _group_of(services: Services, activity: dict[str, Any]) -> Group | None:
    """The group an activity is about: its target (a group collection), audience, cc, or its object's group."""
    candidates = [id_of(activity.get("target")) or "", *ids_of(activity.get("audience")), *ids_of(activity.get("cc"))]
    for uri in candidates:
        base = uri.rsplit("/", 1)[0] if uri.endswith(("/featured", "/moderators")) else uri
        name = group_name_from_uri(base, services.links)
        if name is not None:
            try:
                async with services.db.read() as conn:
                    return await get_group(conn, name)
            except KithError:
                continue
    obj = id_of(activity.get("object"))
    if obj is not None:
        async with services.db.read() as conn:
            post = await find_post(conn, obj)
            if post is not None:
                return await get_group_by_id(conn, post.group_id)
    return None


async def _authorised(
    services: Services, activity: dict[str, Any], item: InboxItem
) -> tuple[Group, actions.Moderator] | None:
    group = await _group_of(services, activity)
    if group is None:
        return None
    moderator = await actions.remote_moderator(services, group, item.actor_uri)
    if moderator is None:
        log.info(
            "%s %s from %s refused: not a moderator of %s",
            activity.get("type"),
            item.activity_uri,
            item.actor_uri,
            group.name,
        )
        return None
    return group, moderator


async def on_lock(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    found = await _authorised(services, activity, item)
    if found is not None:
        group, by = found
        await _safely(
            actions.set_locked(
                services,
                group,
                id_of(activity.get("object")) or "",
                True,
                by=by,
                reason=activity.get("summary") or "",
                activity=activity,
            )
        )


async def on_block(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """A ban from a group's moderator (``Block`` with the group as ``target``)."""
    if group_name_from_uri(id_of(activity.get("target")) or "", services.links) is None:
        return  # a user-level block of someone: nothing for a group server to do
    found = await _authorised(services, activity, item)
    if found is not None:
        group, by = found
        await _safely(
            actions.ban(
                services,
                group,
                id_of(activity.get("object")) or "",
                by=by,
                reason=activity.get("summary") or "",
                remove_content=activity.get("removeData") is True,
                activity=activity,
            )
        )


async def on_add_remove(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Pin/unpin (target: featured) or add/remove a moderator (target: moderators)."""
    target = id_of(activity.get("target")) or ""
    found = await _authorised(services, activity, item)
    if found is None:
        return
    group, by = found
    add = activity["type"] == "Add"
    obj = id_of(activity.get("object")) or ""
    if target.endswith("/featured"):
        await _safely(actions.set_pinned(services, group, obj, add, by=by, activity=activity))
    elif target.endswith("/moderators"):
        await _safely(actions.set_moderator(services, group, obj, add, by=by, activity=activity))


async def on_undo_moderation(services: Services, undo: dict[str, Any], obj: dict[str, Any], item: InboxItem) -> None:
    """Undo(Lock) unlocks, Undo(Block) unbans, Undo(Delete) by a moderator restores."""
    if id_of(obj.get("actor")) not in (None, item.actor_uri):
        return
    found = await _authorised(services, obj, item)
    if found is None:
        return
    group, by = found
    target = id_of(obj.get("object")) or ""
    if obj.get("type") == "Lock":
        await _safely(actions.set_locked(services, group, target, False, by=by, activity=undo))
    elif obj.get("type") == "Block":
        await _safely(actions.unban(services, group, target, by=by, activity=undo))
    elif obj.get("type") == "Delete":
        await _safely(actions.restore_post(services, group, target, by=by, activity=undo))


async def _safely(action: Awaitable[object]) -> None:
    """A remote moderator's action on something that is not there (or not in that state) is a no-op."""
    try:
        await action
    except KithError as exc:
        log.info("remote moderation not applied: %s", exc.reason)
