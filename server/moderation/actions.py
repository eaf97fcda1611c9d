"""Moderation actions: each one transaction that writes the mod log and queues what federates.

Activities are shaped as Lemmy sends them (the moderator's actor, the group in ``cc``
and ``audience``, the reason in ``summary``) and reach members wrapped in the group's
``Announce``, so Lemmy, Mbin and PieFed apply them too. Mastodon followers see a
removed post's ``Announce`` withdrawn (``Undo``). Every table is changed through its
owner (posts, follows, bans, roles); this module decides, logs and tells.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from server.accounts import get_user
from server.errors import BadRequest, Forbidden, NotFound
from server.federation import activities
from server.federation.actors import find_actor
from server.federation.delivery import enqueue
from server.groups import posts
from server.groups.fanout import queue_fanout
from server.groups.following import decide_pending, end_membership
from server.groups.membership import Group, get_group
from server.groups.posts import Post, find_post, find_post_by_id
from server.groups.redistribute import redistribute, withdraw_announces
from server.moderation import authority, modlog, rulebook
from server.services import Services
from server.types import utcnow

log = logging.getLogger("kith.moderation")


@dataclass(frozen=True)
class Moderator:
    """Who acts: ``name`` goes to the mod log, ``uri`` into federated activities."""

    name: str
    uri: str
    local_user: str | None = None  # set for a local account


async def local_moderator(services: Services, conn: AsyncConnection, group: Group, user_name: str) -> Moderator:
    """A local account allowed to moderate ``group`` (a leader of it, or an instance admin)."""
    user = await get_user(conn, user_name)
    if await authority.local_role(conn, group.id, user_name) is None and not user.is_admin:
        raise Forbidden(f"{user_name} is not a moderator of {group.name}")
    return Moderator(user_name, services.links.actor("person", user_name), user_name)


async def _log(
    conn: AsyncConnection,
    group: Group,
    by: Moderator,
    action: str,
    target: str,
    reason: str = "",
    expires_at: datetime | None = None,
) -> None:
    await modlog.write(
        conn, group_id=group.id, moderator=by.name, action=action, target=target, reason=reason, expires_at=expires_at
    )


async def _post_in(conn: AsyncConnection, group: Group, uri: str) -> Post:
    post = await find_post(conn, uri)
    if post is None or post.group_id != group.id:
        raise NotFound("no such post in this group")
    return post


def _mod_activity(services: Services, group: Group, by: Moderator, kind: str, obj: str, **kw: Any) -> dict[str, Any]:
    return activities.moderation(
        services.links.base, kind=kind, actor=by.uri, obj=obj, group_uri=services.links.group(group.name), **kw
    )


def _undo(services: Services, group: Group, by: Moderator, activity: dict[str, Any]) -> dict[str, Any]:
    return activities.undo(services.links.base, by.uri, activity, services.links.group(group.name))


async def remove_post(
    services: Services,
    group: Group,
    post_uri: str,
    *,
    by: Moderator,
    reason: str,
    activity: dict[str, Any] | None = None,
) -> None:
    """Remove a post or comment (restorable); members' servers hide it too."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        if post.state not in posts.REMOVABLE:
            raise BadRequest("the post is not visible")
        await posts.set_state(conn, post, "removed", reason=reason)
        await _log(conn, group, by, "remove", post_uri, reason)
        if post.state == "visible":
            await withdraw_announces(conn, services, group, post.id)
            group_uri = services.links.group(group.name)
            if post.author_uri == group_uri and post.author_id is None:
                # The group's own post (groups/voice): its author deletes it, as Mastodon expects
                # (an Announce(Delete) it ignores, and no plain Announce of it went out to undo).
                own = activities.delete_own(
                    services.links.base, actor=group_uri, obj=post_uri, former_type=post.type, deleted=utcnow()
                )
                await queue_fanout(conn, activities=[own], group_id=group.id, public=True, post_id=None)
            else:
                delete = activity or _mod_activity(services, group, by, "Delete", post_uri, summary=reason or None)
                await redistribute(conn, services, group, delete, post_id=None)
    services.wake.set()


async def restore_post(
    services: Services,
    group: Group,
    post_uri: str,
    *,
    by: Moderator,
    reason: str = "",
    activity: dict[str, Any] | None = None,
) -> None:
    """Undo a removal: the post is shown again and announced again."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        if post.state != "removed":
            raise BadRequest("the post is not removed")
        await posts.set_state(conn, post, "visible")
        await _log(conn, group, by, "restore", post_uri, reason)
        undo = activity or _undo(services, group, by, _mod_activity(services, group, by, "Delete", post_uri))
        await redistribute(conn, services, group, undo, post_id=None)
        await redistribute(conn, services, group, post_uri, post_id=post.id)
    services.wake.set()


async def set_locked(
    services: Services,
    group: Group,
    post_uri: str,
    locked: bool,
    *,
    by: Moderator,
    reason: str = "",
    activity: dict[str, Any] | None = None,
) -> None:
    """Lock (no new replies) or unlock a thread, as Lemmy's ``Lock``."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        root = post if post.root_id is None else await find_post_by_id(conn, post.root_id)
        assert root is not None  # a reply's root stays (a deleted one is a tombstone row)
        await posts.set_locked(conn, root.id, locked)
        await _log(conn, group, by, "lock" if locked else "unlock", root.uri, reason)
        lock = _mod_activity(services, group, by, "Lock", root.uri, summary=reason or None)
        out = activity or (lock if locked else _undo(services, group, by, lock))
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()


async def set_pinned(
    services: Services,
    group: Group,
    post_uri: str,
    pinned: bool,
    *,
    by: Moderator,
    activity: dict[str, Any] | None = None,
) -> None:
    """Pin to (``Add``) or unpin from (``Remove``) the group's featured collection."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        if post.root_id is not None:
            raise BadRequest("only a thread's first post can be pinned")
        await posts.set_pinned(conn, post.id, pinned)
        await _log(conn, group, by, "pin" if pinned else "unpin", post_uri)
        featured = services.links.collection("group", group.name, "featured")
        out = activity or _mod_activity(services, group, by, "Add" if pinned else "Remove", post_uri, target=featured)
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()


async def ban(
    services: Services,
    group: Group,
    actor_uri: str,
    *,
    by: Moderator,
    reason: str = "",
    expires_at: datetime | None = None,
    remove_content: bool = False,
    activity: dict[str, Any] | None = None,
) -> int:
    """Ban a member: no longer accepted nor announced, membership ended, content optionally removed.

    Federated as Lemmy's ``Block`` with the group as ``target``, to the members and to the
    banned actor's server. Returns how many posts were removed.
    """
    removed = 0
    group_uri = services.links.group(group.name)
    async with services.db.transaction() as conn:
        await rulebook.add_ban(conn, services.db, group.id, actor_uri, reason=reason, expires_at=expires_at)
        await _log(conn, group, by, "ban", actor_uri, reason, expires_at)
        extra: dict[str, Any] = {"removeData": remove_content}
        if expires_at is not None:
            extra["endTime"] = expires_at.isoformat().replace("+00:00", "Z")
        block = activity or _mod_activity(
            services, group, by, "Block", actor_uri, summary=reason or None, target=group_uri, **extra
        )
        await redistribute(conn, services, group, block, post_id=None)
        target = await find_actor(conn, actor_uri)
        if target is not None:
            await end_membership(conn, group.id, target.id)
            # The banned actor's server hears of it too (it is no longer a member to reach through the fan-out).
            await enqueue(
                conn,
                services.db,
                activity=activities.announce(services.links.base, group_uri, block, published=utcnow()),
                actor_id=group.id,
                inboxes=[target.delivery_inbox],
            )
            if remove_content:
                ids = await posts.remove_by_author(conn, group.id, target.id, reason or "banned")
                for post_id in ids:
                    await withdraw_announces(conn, services, group, post_id)
                removed = len(ids)
    services.wake.set()
    return removed


async def unban(
    services: Services,
    group: Group,
    actor_uri: str,
    *,
    by: Moderator,
    reason: str = "",
    activity: dict[str, Any] | None = None,
) -> None:
    async with services.db.transaction() as conn:
        if not await rulebook.lift_ban(conn, group.id, actor_uri):
            raise NotFound(f"{actor_uri} is not banned from {group.name}")
        await _log(conn, group, by, "unban", actor_uri, reason)
        block = _mod_activity(services, group, by, "Block", actor_uri, target=services.links.group(group.name))
        out = activity or _undo(services, group, by, block)
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()


async def decide_held_post(
    services: Services, group: Group, post_uri: str, approve: bool, *, by: Moderator, reason: str = ""
) -> None:
    """Approve a held post (shown and announced now) or reject it (removed)."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        if post.state != "held":
            raise BadRequest("the post is not waiting for approval")
        await posts.set_state(conn, post, "visible" if approve else "removed", reason=reason)
        await _log(conn, group, by, "approve_post" if approve else "reject_post", post_uri, reason)
        if approve:
            # Only the post's id travels: receivers fetch it from its origin.
            await redistribute(conn, services, group, post_uri, post_id=post.id)
    services.wake.set()


async def decide_follow_request(
    services: Services, group: Group, actor_uri: str, approve: bool, *, by: Moderator
) -> str:
    """Approve or refuse a pending follow, logged, in one transaction."""
    async with services.db.transaction() as conn:
        state = await decide_pending(conn, services, group, actor_uri, approve=approve)
        await _log(conn, group, by, "approve_follow" if approve else "reject_follow", actor_uri)
    services.wake.set()
    return state


async def set_moderator(
    services: Services, group: Group, who: str, add: bool, *, by: Moderator, activity: dict[str, Any] | None = None
) -> str:
    """Add or remove a moderator: a local account name or a remote actor URI. Owners only, for local callers."""
    async with services.db.transaction() as conn:
        if by.local_user is not None and not await _owner_or_admin(conn, group, by.local_user):
            raise Forbidden("only the group's owner adds and removes moderators")
        if who.startswith(("https://", "http://")):
            uri = who
            if add:
                await authority.add_remote_moderator(conn, group.id, uri)
            elif not await authority.remove_remote_moderator(conn, group.id, uri):
                raise NotFound(f"{uri} is not a moderator of {group.name}")
        else:
            user = await get_user(conn, who)
            uri = services.links.actor("person", who)
            role = await authority.local_role(conn, group.id, who)
            if not add and role != "moderator":
                raise BadRequest(f"{who} is {'the owner' if role == 'owner' else 'not a moderator'} of {group.name}")
            if add:
                await authority.add_role(conn, group.id, user.id, "moderator")
            else:
                await authority.remove_moderator_role(conn, group.id, user.id)
        await _log(conn, group, by, "add_moderator" if add else "remove_moderator", uri)
        target = services.links.collection("group", group.name, "moderators")
        out = activity or _mod_activity(services, group, by, "Add" if add else "Remove", uri, target=target)
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()
    return uri


async def transfer_ownership(services: Services, group: Group, new_owner: str, *, by: Moderator) -> None:
    """Hand a group to another local account (the old owner stays a moderator); owners and admins only.

    Logged; when the new owner did not lead the group yet, the moderators collection grows
    and that ``Add`` federates as ``set_moderator``'s does.
    """
    async with services.db.transaction() as conn:
        if by.local_user is not None and not await _owner_or_admin(conn, group, by.local_user):
            raise Forbidden("only the group's owner or an admin hands the group over")
        user = await get_user(conn, new_owner)
        if await authority.local_role(conn, group.id, new_owner) == "owner":
            raise BadRequest(f"{new_owner} already owns {group.name}")
        led_before = await authority.transfer_owner(conn, group.id, user.id)
        uri = services.links.actor("person", new_owner)
        await _log(conn, group, by, "transfer_ownership", uri)
        if not led_before:
            target = services.links.collection("group", group.name, "moderators")
            await redistribute(
                conn, services, group, _mod_activity(services, group, by, "Add", uri, target=target), post_id=None
            )
    services.wake.set()


async def _owner_or_admin(conn: AsyncConnection, group: Group, user_name: str) -> bool:
    if await authority.local_role(conn, group.id, user_name) == "owner":
        return True
    return (await get_user(conn, user_name)).is_admin


async def group_and_moderator(services: Services, group_name: str, user_name: str) -> tuple[Group, Moderator]:
    """Resolve a group and check that a local account may moderate it."""
    async with services.db.read() as conn:
        group = await get_group(conn, group_name)
        return group, await local_moderator(services, conn, group, user_name)


async def remote_moderator(services: Services, group: Group, actor_uri: str) -> Moderator | None:
    """The sender as a moderator of ``group``, or None (FEP-1b12 authority rule)."""
    async with services.db.read() as conn:
        if await authority.is_moderator(conn, group.id, actor_uri, services.links):
            return Moderator(actor_uri, actor_uri)
    return None
