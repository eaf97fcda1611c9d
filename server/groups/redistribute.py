"""FEP-1b12 redistribution: who receives, the Announces, and queuing them.

One delivery per member server (its shared inbox), the author's own server
included: other members live there too and see the post through the group. The
Announces are queued as one fan-out row; the worker reads the member servers when it
sends (``server.groups.fanout``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from server.federation.activities import new_activity_id
from server.federation.delivery import enqueue_fanout
from server.federation.serialize import iso
from server.federation.vocab import AS_CONTEXT, AS_PUBLIC
from server.services import Services
from server.types import utcnow


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
    sent = [announce(services.links.base, group_uri, activity)]
    if plain_object is not None:
        sent.append(announce(services.links.base, group_uri, plain_object))
    await enqueue_fanout(conn, activities=sent, group_id=group.id, public=True, post_id=post_id)
    return sent
