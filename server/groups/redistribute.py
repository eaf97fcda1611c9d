"""FEP-1b12 redistribution: the group's Announces of what happened in it, queued as one fan-out.

One delivery per member server (its shared inbox), the author's own server included:
other members live there too and see the post through the group. The worker reads the
member servers when it sends (``server.groups.fanout``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation import activities, outbound
from server.groups.fanout import queue_fanout
from server.groups.membership import Group
from server.services import Services
from server.types import utcnow


async def redistribute(
    conn: AsyncConnection,
    services: Services,
    group: Group,
    activity: dict[str, Any] | str,
    *,
    post_id: int | None,
    plain_object: str | None = None,
) -> list[dict[str, Any]]:
    """Queue the group's Announce of ``activity`` (and of ``plain_object``) to every member server.

    ``plain_object`` is set for a new top-level post: Mastodon displays only a
    plain ``Announce(<object>)``, so Lemmy, NodeBB and Kith also send that form.
    """
    group_uri = services.links.group(group.name)
    now = utcnow()
    if isinstance(activity, dict) and activity.get("id", "").startswith(services.links.activity("")):
        # One of ours wrapped (a moderator's Delete, Lock, Block, Undo ...): stored too, so that it
        # dereferences at its id for servers that re-fetch what an Announce wraps (microblog.pub).
        await outbound.store(conn, activity, actor_id=group.id, public=True, post_id=post_id)
    sent = [activities.announce(services.links.base, group_uri, activity, published=now)]
    if plain_object is not None:
        sent.append(activities.announce(services.links.base, group_uri, plain_object, published=now))
    await queue_fanout(conn, activities=sent, group_id=group.id, public=True, post_id=post_id)
    return sent


async def withdraw_announces(conn: AsyncConnection, services: Services, group: Group, post_id: int) -> None:
    """Undo the group's plain Announces of a post (what Mastodon displays) and tombstone them all.

    Every deletion does this, a moderator's removal and an author's own Delete alike: a
    server that shows the plain ``Announce`` and ignores ``Announce(Delete)`` (Mastodon)
    would otherwise keep showing the post.
    """
    group_uri = services.links.group(group.name)
    undos = [
        activities.undo(services.links.base, group_uri, doc, group_uri)
        for doc in (a.document() for a in await outbound.live_announces_of(conn, post_id))
        if isinstance(doc.get("object"), str)
    ]
    if undos:
        await queue_fanout(conn, activities=undos, group_id=group.id, public=False, post_id=None)
    await outbound.tombstone_for_post(conn, post_id)
