"""Create of a Note, Page, Article or Question: a member posts or replies in a group."""

from __future__ import annotations

import logging
from typing import Any

from server.federation.objects import same_origin
from server.federation.vocab import id_of
from server.groups.intake import Budget, fetch_trusted, take_post
from server.inbox.store import InboxItem
from server.services import Services

log = logging.getLogger("kith.create")


async def on_create(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Trust the embedded object only when it shares the sender's origin; else refetch it."""
    budget = Budget()
    obj = activity.get("object")
    obj_id = id_of(obj)
    if obj_id is None:
        return
    author = id_of(obj.get("attributedTo")) if isinstance(obj, dict) else None
    wrapped: dict[str, Any] | None = activity
    if not isinstance(obj, dict) or not same_origin(item.actor_uri, obj_id, author):
        # By reference, or claiming another host than the sender's: believe only the origin.
        fetched = await fetch_trusted(services, obj_id, budget)
        if fetched is None or not same_origin(fetched.get("id"), id_of(fetched.get("attributedTo"))):
            log.info("Create %s: object %s not trusted", item.activity_uri, obj_id)
            return
        obj = fetched
        if not same_origin(item.actor_uri, obj_id):
            wrapped = None  # someone else's Create of this post: do not pass it on as is
    outcome = await take_post(services, obj, activity=wrapped, budget=budget)
    log.info("Create %s: %s", item.activity_uri, outcome)
