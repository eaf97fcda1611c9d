"""Announce received: content inside someone else's Announce is refetched, never trusted as is."""

from __future__ import annotations

import logging
from typing import Any

from server.federation.objects import POST_TYPES, same_origin
from server.federation.vocab import as_list, id_of, ids_of
from server.groups.intake import Budget, fetch_trusted, take_post
from server.inbox.store import InboxItem
from server.services import Services

log = logging.getLogger("kith.announce")


def _inner_object_id(obj: Any) -> str | None:
    """The post an Announce carries: its object, or the object of the activity it wraps."""
    if isinstance(obj, dict) and obj.get("type") in ("Create", "Update") and obj.get("object") is not None:
        return id_of(obj["object"])
    return id_of(obj)


def _claims_our_group(services: Services, *docs: Any) -> bool:
    """Does any of these (untrusted) documents even claim to address one of our groups?

    Only a hint, used to avoid fetching for Announces that are not about us at all;
    what counts is the refetched original.
    """
    prefix = services.links.base + "/groups/"
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        tags = [t.get("href") for t in as_list(doc.get("tag")) if isinstance(t, dict)]
        refs = ids_of(doc.get("to")) + ids_of(doc.get("cc")) + ids_of(doc.get("audience")) + tags
        if any(isinstance(r, str) and r.startswith(prefix) for r in refs):
            return True
    return False


async def on_announce(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """A boost or a group's relay of a post: fetch the post from its origin, then take it in."""
    obj = activity.get("object")
    obj_id = _inner_object_id(obj)
    if obj_id is None:
        return
    inner = obj.get("object") if isinstance(obj, dict) else None
    if not _claims_our_group(services, activity, obj, inner):
        return
    budget = Budget()
    obj = await fetch_trusted(services, obj_id, budget)
    if obj is None or obj.get("type") not in POST_TYPES:
        return
    if not same_origin(obj.get("id"), id_of(obj.get("attributedTo"))):
        log.info("Announce %s: %s is misattributed", item.activity_uri, obj_id)
        return
    outcome = await take_post(services, obj, activity=None, budget=budget)
    log.info("Announce %s: %s", item.activity_uri, outcome)
