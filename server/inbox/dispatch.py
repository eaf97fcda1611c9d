"""The dispatch table: activity type -> handler module. One family per module."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.inbox.handlers import announce, content, create, follow, reaction, undo
from server.services import Services

log = logging.getLogger("kith.dispatch")

Handler = Callable[[Services, dict[str, Any], Any], Awaitable[None]]


async def ignore(services: Services, activity: dict[str, Any], item: Any) -> None:
    """Activities we receive but have nothing to do with (yet)."""


HANDLERS: dict[str, Handler] = {
    "Follow": follow.on_follow,
    "Undo": undo.on_undo,
    "Create": create.on_create,
    "Update": content.on_update,
    "Delete": content.on_delete,
    "Like": reaction.on_reaction,
    "Dislike": reaction.on_reaction,
    "EmojiReact": reaction.on_reaction,
    "Announce": announce.on_announce,
    "Accept": ignore,
    "Reject": ignore,
}


async def dispatch(services: Services, item: Any) -> None:
    """Run the handler for one stored inbox item."""
    activity = json.loads(item.body)
    handler = HANDLERS.get(activity.get("type"), ignore)
    if handler is ignore:
        log.debug("ignoring %s %s", activity.get("type"), item.activity_uri)
    await handler(services, activity, item)
