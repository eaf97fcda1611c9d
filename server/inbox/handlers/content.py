"""Update and Delete of posts, from their author (or a group moderator), passed on to members."""

from __future__ import annotations

import logging
from typing import Any

from server.federation.objects import ParseError, author_of, parse_post, same_origin
from server.federation.vocab import id_of
from server.groups.membership import Group, get_group_by_id
from server.groups.posts import Post, delete_post, find_post, record_tombstone, update_post
from server.groups.redistribute import redistribute, withdraw_announces
from server.inbox.handlers import actor as actor_handlers
from server.inbox.store import InboxItem
from server.moderation import actions
from server.moderation.policy import may_change
from server.services import Services

log = logging.getLogger("kith.content")


async def _post_and_group(services: Services, uri: str | None) -> tuple[Post, Group] | None:
    if uri is None:
        return None
    async with services.db.read() as conn:
        post = await find_post(conn, uri)
        if post is None:
            return None
        return post, await get_group_by_id(conn, post.group_id)


async def on_update(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """An edit: accepted only from the post's author, with the object from the same origin.

    As for a Create, the signed sender must be the object's ``attributedTo``, and that
    must be who the stored post is by; anything else is refused before it is looked up.
    """
    obj = activity.get("object")
    if id_of(obj) == item.actor_uri:
        await actor_handlers.on_update(services, activity, item)
        return
    if not isinstance(obj, dict):
        return
    if author_of(obj) != item.actor_uri:
        log.info("Update %s refused: %s is attributed to %s", item.activity_uri, id_of(obj), author_of(obj))
        return
    found = await _post_and_group(services, id_of(obj))
    if found is None:
        return
    post, group = found
    verdict = may_change(actor=item.actor_uri, author=post.author_uri, is_moderator=False)
    if not verdict.allowed or post.state != "visible" or not same_origin(item.actor_uri, post.uri):
        log.info("Update %s refused: %s", item.activity_uri, verdict.reason or "not the post's origin")
        return
    try:
        env = parse_post(obj)
    except ParseError as exc:
        log.info("Update %s unusable: %s", item.activity_uri, exc)
        return
    if env.uri != post.uri or env.author != post.author_uri:
        return
    async with services.db.transaction() as conn:
        if env.public:
            await update_post(conn, post, env, obj)
            await redistribute(conn, services, group, activity, post_id=post.id)
        else:
            # Narrowed to followers-only or direct: stop showing it, say nothing more about it.
            await delete_post(conn, post)
    services.wake.set()


async def on_delete(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """A delete, honoured at once: a tombstone stays, our Announces of it answer 410."""
    target = id_of(activity.get("object"))
    if target == item.actor_uri:
        await actor_handlers.on_delete(services, activity, item)
        return
    found = await _post_and_group(services, target)
    if found is None:
        if target is not None and same_origin(item.actor_uri, target):
            async with services.db.transaction() as conn:
                await record_tombstone(conn, services.db, target, actor_uri=item.actor_uri)
        return
    post, group = found
    if item.actor_uri != post.author_uri:
        moderator = await actions.remote_moderator(services, group, item.actor_uri)
        if moderator is None:
            log.info("Delete %s of %s by a non-author refused", item.activity_uri, post.uri)
            return
        # A listed moderator's Delete is a removal (restorable), as Lemmy means it.
        if post.state in ("visible", "held"):
            await actions.remove_post(
                services, group, post.uri, by=moderator, reason=activity.get("summary") or "", activity=activity
            )
        return
    if post.state == "deleted":
        return
    async with services.db.transaction() as conn:
        if post.state == "visible":
            # As a moderator's removal does: Mastodon shows the plain Announce and ignores Announce(Delete).
            await withdraw_announces(conn, services, group, post.id)
        await delete_post(conn, post)
        await redistribute(conn, services, group, activity, post_id=None)
    services.wake.set()
