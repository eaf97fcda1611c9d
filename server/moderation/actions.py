"""Moderation actions: each one transaction that writes the mod log and queues what federates.

Activities are shaped as Lemmy sends them (the moderator's actor, the group in ``cc``
and ``audience``, the reason in ``summary``) and reach members wrapped in the group's
``Announce``, so Lemmy, Mbin and PieFed apply them too. Mastodon followers see a
removed post's ``Announce`` withdrawn (``Undo``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.accounts import get_user
from server.db import upsert
from server.errors import BadRequest, Forbidden, NotFound
from server.federation import activities
from server.federation.delivery import enqueue, enqueue_fanout
from server.groups.following import decide_follow, inbox_of
from server.groups.membership import get_group
from server.groups.posts import find_post
from server.groups.redistribute import announce, redistribute
from server.moderation import modlog
from server.moderation.authority import is_moderator, local_role
from server.services import Services
from server.tables import (
    bans,
    follows,
    group_roles,
    outbound_activities,
    posts,
    remote_actors,
    remote_moderators,
)
from server.types import utcnow

log = logging.getLogger("kith.moderation")


@dataclass(frozen=True)
class Moderator:
    """Who acts: ``name`` goes to the mod log, ``uri`` into federated activities."""

    name: str
    uri: str
    local_user: str | None = None  # set for a local account


async def local_moderator(services: Services, conn: AsyncConnection, group: Any, user_name: str) -> Moderator:
    """A local account allowed to moderate ``group`` (a leader of it, or an instance admin)."""
    user = await get_user(conn, user_name)
    if await local_role(conn, group.id, user_name) is None and not user.is_admin:
        raise Forbidden(f"{user_name} is not a moderator of {group.name}")
    return Moderator(user_name, services.links.actor("person", user_name), user_name)


async def _log(
    conn: AsyncConnection,
    group: Any,
    by: Moderator,
    action: str,
    target: str,
    reason: str = "",
    expires_at: datetime | None = None,
) -> None:
    await modlog.write(
        conn, group_id=group.id, moderator=by.name, action=action, target=target, reason=reason, expires_at=expires_at
    )


async def _post_in(conn: AsyncConnection, group: Any, uri: str) -> Any:
    post = await find_post(conn, uri)
    if post is None or post.group_id != group.id:
        raise NotFound("no such post in this group")
    return post


def _mod_activity(services: Services, group: Any, by: Moderator, kind: str, obj: Any, **kw: Any) -> dict[str, Any]:
    return activities.moderation(
        services.links.base, kind=kind, actor=by.uri, obj=obj, group_uri=services.links.group(group.name), **kw
    )


async def _withdraw_announces(conn: AsyncConnection, services: Services, group: Any, post_id: int) -> None:
    """Undo the group's plain Announces of a post (what Mastodon displays) and tombstone them."""
    rows = (
        await conn.execute(
            sa.select(outbound_activities).where(
                outbound_activities.c.post_id == post_id,
                outbound_activities.c.type == "Announce",
                outbound_activities.c.deleted_at.is_(None),
            )
        )
    ).all()
    group_uri = services.links.group(group.name)
    undos = [
        activities.undo(services.links.base, group_uri, body, group_uri)
        for body in (json.loads(row.body) for row in rows)
        if isinstance(body.get("object"), str)
    ]
    if undos:
        await enqueue_fanout(conn, activities=undos, group_id=group.id, public=False, post_id=None)
    await conn.execute(
        sa.update(outbound_activities)
        .where(outbound_activities.c.post_id == post_id, outbound_activities.c.deleted_at.is_(None))
        .values(deleted_at=utcnow())
    )


async def remove_post(
    services: Services, group: Any, post_uri: str, *, by: Moderator, reason: str, activity: dict[str, Any] | None = None
) -> None:
    """Remove a post or comment (restorable); members' servers hide it too."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        if post.state not in ("visible", "held"):
            raise BadRequest("the post is not visible")
        await conn.execute(sa.update(posts).where(posts.c.id == post.id).values(state="removed", removed_reason=reason))
        await _log(conn, group, by, "remove", post_uri, reason)
        if post.state == "visible":
            await _withdraw_announces(conn, services, group, post.id)
            delete = activity or _mod_activity(services, group, by, "Delete", post_uri, summary=reason or None)
            await redistribute(conn, services, group, delete, post_id=None)
    services.wake.set()


async def restore_post(
    services: Services,
    group: Any,
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
        await conn.execute(sa.update(posts).where(posts.c.id == post.id).values(state="visible", removed_reason=None))
        await _log(conn, group, by, "restore", post_uri, reason)
        delete = _mod_activity(services, group, by, "Delete", post_uri)
        undo = activity or activities.undo(services.links.base, by.uri, delete, services.links.group(group.name))
        await redistribute(conn, services, group, undo, post_id=None)
        await redistribute(conn, services, group, post_uri, post_id=post.id)
    services.wake.set()


async def set_locked(
    services: Services,
    group: Any,
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
        root_uri = post.uri
        if post.root_id is not None:
            root_uri = (await conn.execute(sa.select(posts.c.uri).where(posts.c.id == post.root_id))).scalar_one()
        await conn.execute(sa.update(posts).where(posts.c.uri == root_uri).values(locked=locked))
        await _log(conn, group, by, "lock" if locked else "unlock", root_uri, reason)
        lock = _mod_activity(services, group, by, "Lock", root_uri, summary=reason or None)
        out = activity or (
            lock if locked else activities.undo(services.links.base, by.uri, lock, services.links.group(group.name))
        )
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()


async def set_pinned(
    services: Services,
    group: Any,
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
        await conn.execute(sa.update(posts).where(posts.c.id == post.id).values(pinned_at=utcnow() if pinned else None))
        await _log(conn, group, by, "pin" if pinned else "unpin", post_uri)
        featured = services.links.collection("group", group.name, "featured")
        out = activity or _mod_activity(services, group, by, "Add" if pinned else "Remove", post_uri, target=featured)
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()


async def ban(
    services: Services,
    group: Any,
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
    async with services.db.transaction() as conn:
        values = {
            "group_id": group.id,
            "actor_uri": actor_uri,
            "reason": reason,
            "expires_at": expires_at,
            "created_at": utcnow(),
        }
        await conn.execute(
            upsert(
                services.db.dialect,
                bans,
                ["group_id", "actor_uri"],
                values,
                {"reason": reason, "expires_at": expires_at},
            )
        )
        target = (await conn.execute(sa.select(remote_actors).where(remote_actors.c.uri == actor_uri))).one_or_none()
        await _log(conn, group, by, "ban", actor_uri, reason, expires_at)
        extra: dict[str, Any] = {"removeData": remove_content}
        if expires_at is not None:
            extra["endTime"] = expires_at.isoformat().replace("+00:00", "Z")
        block = activity or _mod_activity(
            services,
            group,
            by,
            "Block",
            actor_uri,
            summary=reason or None,
            target=services.links.group(group.name),
            **extra,
        )
        await redistribute(conn, services, group, block, post_id=None)
        if target is not None:
            await conn.execute(
                sa.delete(follows).where(follows.c.group_id == group.id, follows.c.actor_id == target.id)
            )
            await enqueue(
                conn,
                services.db,
                activity=announce(services.links.base, services.links.group(group.name), block),
                actor_id=group.id,
                inboxes=[inbox_of(target)],
            )
            if remove_content:
                ids = (
                    (
                        await conn.execute(
                            sa.update(posts)
                            .where(
                                posts.c.group_id == group.id,
                                posts.c.author_id == target.id,
                                posts.c.state.in_(("visible", "held")),
                            )
                            .values(state="removed", removed_reason=reason or "banned")
                            .returning(posts.c.id)
                        )
                    )
                    .scalars()
                    .all()
                )
                for post_id in ids:
                    await _withdraw_announces(conn, services, group, post_id)
                removed = len(ids)
    services.wake.set()
    return removed


async def unban(
    services: Services,
    group: Any,
    actor_uri: str,
    *,
    by: Moderator,
    reason: str = "",
    activity: dict[str, Any] | None = None,
) -> None:
    async with services.db.transaction() as conn:
        result = await conn.execute(sa.delete(bans).where(bans.c.group_id == group.id, bans.c.actor_uri == actor_uri))
        if result.rowcount == 0:
            raise NotFound(f"{actor_uri} is not banned from {group.name}")
        await _log(conn, group, by, "unban", actor_uri, reason)
        block = _mod_activity(services, group, by, "Block", actor_uri, target=services.links.group(group.name))
        out = activity or activities.undo(services.links.base, by.uri, block, services.links.group(group.name))
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()


async def decide_held_post(
    services: Services, group: Any, post_uri: str, approve: bool, *, by: Moderator, reason: str = ""
) -> None:
    """Approve a held post (shown and announced now) or reject it (removed)."""
    async with services.db.transaction() as conn:
        post = await _post_in(conn, group, post_uri)
        if post.state != "held":
            raise BadRequest("the post is not waiting for approval")
        state = "visible" if approve else "removed"
        await conn.execute(
            sa.update(posts)
            .where(posts.c.id == post.id)
            .values(state=state, removed_reason=None if approve else reason)
        )
        await _log(conn, group, by, "approve_post" if approve else "reject_post", post_uri, reason)
        if approve:
            # Only the post's id travels: receivers fetch it from its origin.
            await redistribute(conn, services, group, post_uri, post_id=post.id)
    services.wake.set()


async def decide_follow_request(services: Services, group: Any, actor_uri: str, approve: bool, *, by: Moderator) -> str:
    """Approve or refuse a pending follow, logged."""
    state = await decide_follow(services, group.name, actor_uri, approve=approve)
    async with services.db.transaction() as conn:
        await _log(conn, group, by, "approve_follow" if approve else "reject_follow", actor_uri)
    return state


async def set_moderator(
    services: Services, group: Any, who: str, add: bool, *, by: Moderator, activity: dict[str, Any] | None = None
) -> str:
    """Add or remove a moderator: a local account name or a remote actor URI. Owners only, for local callers."""
    async with services.db.transaction() as conn:
        if by.local_user is not None and await local_role(conn, group.id, by.local_user) != "owner":
            user = await get_user(conn, by.local_user)
            if not user.is_admin:
                raise Forbidden("only the group's owner adds and removes moderators")
        if who.startswith(("https://", "http://")):
            uri = who
            if add:
                await conn.execute(
                    services.db.insert_ignore(remote_moderators, ["group_id", "actor_uri"]).values(
                        group_id=group.id, actor_uri=uri, created_at=utcnow()
                    )
                )
            else:
                gone = await conn.execute(
                    sa.delete(remote_moderators).where(
                        remote_moderators.c.group_id == group.id, remote_moderators.c.actor_uri == uri
                    )
                )
                if gone.rowcount == 0:
                    raise NotFound(f"{uri} is not a moderator of {group.name}")
        else:
            user = await get_user(conn, who)
            uri = services.links.actor("person", who)
            role = await local_role(conn, group.id, who)
            if not add and role != "moderator":
                raise BadRequest(f"{who} is {'the owner' if role == 'owner' else 'not a moderator'} of {group.name}")
            if add:
                await conn.execute(
                    services.db.insert_ignore(group_roles, ["group_id", "user_id"]).values(
                        group_id=group.id, user_id=user.id, role="moderator", created_at=utcnow()
                    )
                )
            else:
                await conn.execute(
                    sa.delete(group_roles).where(
                        group_roles.c.group_id == group.id,
                        group_roles.c.user_id == user.id,
                        group_roles.c.role == "moderator",
                    )
                )
        await _log(conn, group, by, "add_moderator" if add else "remove_moderator", uri)
        target = services.links.collection("group", group.name, "moderators")
        out = activity or _mod_activity(services, group, by, "Add" if add else "Remove", uri, target=target)
        await redistribute(conn, services, group, out, post_id=None)
    services.wake.set()
    return uri


async def group_and_moderator(services: Services, group_name: str, user_name: str) -> tuple[Any, Moderator]:
    """Resolve a group and check that a local account may moderate it."""
    async with services.db.read() as conn:
        group = await get_group(conn, group_name)
        return group, await local_moderator(services, conn, group, user_name)


async def remote_moderator(services: Services, group: Any, actor_uri: str) -> Moderator | None:
    """The sender as a moderator of ``group``, or None (FEP-1b12 authority rule)."""
    async with services.db.read() as conn:
        if await is_moderator(conn, group.id, actor_uri, services.links):
            return Moderator(actor_uri, actor_uri)
    return None
