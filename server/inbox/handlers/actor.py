"""An actor's own Update (refresh our copy) and Delete (forget it and its memberships)."""

from __future__ import annotations

import logging
from typing import Any

from server.federation.actors import ACTOR_TYPES, InvalidActor, parse_actor
from server.federation.vocab import as_list, id_of
from server.groups.following import leave_everywhere
from server.inbox.store import InboxItem
from server.services import Services

log = logging.getLogger("kith.actor")


async def on_update(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Update of the sender's own actor document: trusted, since the sender signed it."""
    obj = activity.get("object")
    if id_of(obj) != item.actor_uri:
        return  # updates of other objects arrive with group conversations
    if isinstance(obj, dict) and any(t in ACTOR_TYPES for t in as_list(obj.get("type"))):
        try:
            await services.actors.store(parse_actor(obj, item.actor_uri))
            return
        except InvalidActor as exc:
            log.info("Update of %s unusable (%s); refetching", item.actor_uri, exc)
    await services.actors.fetch(item.actor_uri)


async def on_delete(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Delete of the sender itself: it leaves every group (recorded as a leave), then the cached actor goes."""
    if id_of(activity.get("object")) != item.actor_uri:
        return
    # Through the memberships' owner first, which records each as ended; the actor's row then goes
    # (its cascade would delete them unrecorded). A crash between the two retries both: no
    # membership is left to end twice.
    await leave_everywhere(services, item.actor_uri)
    if await services.actors.remove(item.actor_uri):
        log.info("actor %s deleted itself", item.actor_uri)
