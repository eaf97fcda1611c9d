"""FEP-1b12 redistribution: who receives, the Announces, and queuing them.

One delivery per member server (its shared inbox), the author's own server
included: other members live there too and see the post through the group.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.activities import new_activity_id
from server.federation.delivery import enqueue
from server.federation.serialize import iso
from server.federation.urls import UnsafeUrl, host_of
from server.federation.vocab import AS_CONTEXT, AS_PUBLIC
from server.services import Services
from server.tables import follows, remote_actors
from server.types import utcnow


async def member_inboxes(conn: AsyncConnection, group_id: int, services: Services) -> list[str]:
    """One inbox per member server (shared inbox first), minus blocked domains."""
    inbox = sa.func.coalesce(remote_actors.c.shared_inbox, remote_actors.c.inbox)
    query = (
        sa.select(inbox.label("inbox"))
        .distinct()
        .join(follows, follows.c.actor_id == remote_actors.c.id)
        .where(follows.c.group_id == group_id, follows.c.state == "accepted")
    )
    return [r.inbox for r in (await conn.execute(query)).all() if not _blocked(services, r.inbox)]


def _blocked(services: Services, inbox: str) -> bool:
    try:
        return services.is_blocked(host_of(inbox))
    except UnsafeUrl:
        return True


def announce(base: str, group_uri: str, obj: Any) -> dict[str, Any]:
    """The group's ``Announce`` of an activity (embedded, unchanged) or of an object (by id)."""
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(base),
        "type": "Announce",
        "actor": group_uri,
        "object": obj,
        "to": [AS_PUBLIC],
        "cc": [f"{group_uri}/followers"],
        "audience": group_uri,
        "published": iso(utcnow()),
    }


async def redistribute(
    conn: AsyncConnection,
    services: Services,
    group: Any,
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
    inboxes = await member_inboxes(conn, group.id, services)
    sent = [announce(services.links.base, group_uri, activity)]
    if plain_object is not None:
        sent.append(announce(services.links.base, group_uri, plain_object))
    for item in sent:
        await enqueue(
            conn, services.db, activity=item, actor_id=group.id, inboxes=inboxes, public=True, post_id=post_id
        )
    return sent
