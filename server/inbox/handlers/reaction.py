"""Like, Dislike (Lemmy, Misskey) and EmojiReact, and their Undo: counted per post, passed on."""

from __future__ import annotations

import logging
from typing import Any

from server.federation.vocab import id_of
from server.groups.membership import get_group_by_id
from server.groups.posts import find_post, find_post_by_id
from server.groups.reactions import add_reaction, remove_reaction
from server.groups.redistribute import redistribute
from server.inbox.store import InboxItem
from server.services import Services

log = logging.getLogger("kith.reaction")
REACTION_TYPES = frozenset({"Like", "Dislike", "EmojiReact"})


def _emoji(activity: dict[str, Any]) -> str:
    content = activity.get("content") or activity.get("_misskey_reaction") or ""
    return content[:64] if isinstance(content, str) else ""


async def on_reaction(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Count a reaction on a visible post once per actor, and tell the members."""
    kind = activity["type"]
    emoji = _emoji(activity) if kind == "EmojiReact" or (kind == "Like" and activity.get("content")) else ""
    if emoji and kind == "Like":
        kind = "EmojiReact"  # Misskey sends emoji reactions as Like with content
    async with services.db.transaction() as conn:
        post = await find_post(conn, id_of(activity.get("object")) or "")
        if post is None or post.state != "visible":
            return
        added = await add_reaction(
            conn, services.db, post, actor_uri=item.actor_uri, kind=kind, emoji=emoji, activity_uri=item.activity_uri
        )
        if added:
            group = await get_group_by_id(conn, post.group_id)
            await redistribute(conn, services, group, activity, post_id=post.id)
    services.wake.set()


async def on_undo_reaction(services: Services, undo: dict[str, Any], obj: Any, item: InboxItem) -> None:
    """Withdraw a reaction; only the actor who made it can."""
    reaction_id = id_of(obj)
    if reaction_id is None:
        return
    if isinstance(obj, dict) and id_of(obj.get("actor")) not in (None, item.actor_uri):
        return
    async with services.db.transaction() as conn:
        embedded = obj if isinstance(obj, dict) else {}
        kind = embedded.get("type")
        if kind == "Like" and embedded.get("content"):
            kind = "EmojiReact"
        post_id = await remove_reaction(
            conn,
            activity_uri=reaction_id,
            actor_uri=item.actor_uri,
            object_uri=id_of(embedded.get("object")),
            kind=kind,
        )
        if post_id is None:
            return
        post = await find_post_by_id(conn, post_id)
        assert post is not None  # its reaction was just found
        group = await get_group_by_id(conn, post.group_id)
        await redistribute(conn, services, group, undo, post_id=post_id)
    services.wake.set()
