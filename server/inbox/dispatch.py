"""The dispatch table: activity type -> handler module. One family per module."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.db import in_batch
from server.federation.objects import refused
from server.inbox.handlers import announce, content, create, flag, follow, moderation, reaction, undo
from server.inbox.store import InboxItem
from server.queue import Deferred
from server.services import Services

log = logging.getLogger("kith.dispatch")

Handler = Callable[[Services, dict[str, Any], InboxItem], Awaitable[None]]


async def ignore(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
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
    "Lock": moderation.on_lock,
    "Block": moderation.on_block,
    "Add": moderation.on_add_remove,
    "Remove": moderation.on_add_remove,
    "Flag": flag.on_flag,
    "Accept": ignore,
    "Reject": ignore,
}


# Types the worker may run several of in one transaction (``Database.batch``): a Create
# needs no network in the common case and defers itself otherwise (``server.queue.Deferred``).
BATCHABLE = frozenset({"Create"})


def batchable(item: InboxItem) -> bool:
    """A cheap first look: may this item be a Create? (``dispatch`` decides on the parsed type.)"""
    return '"Create"' in item.body


def cut_off(services: Services, actor_uri: str) -> bool:
    """Has the sender been blocked or suspended since its activity was accepted?"""
    return refused(actor_uri, services.is_blocked) or services.blocklist.policy.actor_suspended(actor_uri)


async def dispatch(services: Services, item: InboxItem) -> None:
    """Run the handler for one stored inbox item, unless its sender is cut off by now."""
    if cut_off(services, item.actor_uri):
        log.info("dropping %s: the sender is blocked", item.activity_uri)
        return
    activity = json.loads(item.body)
    if in_batch() and activity.get("type") not in BATCHABLE:
        raise Deferred("only Creates run in a shared transaction")
    handler = HANDLERS.get(activity.get("type"), ignore)
    if handler is ignore:
        log.debug("ignoring %s %s", activity.get("type"), item.activity_uri)
    await handler(services, activity, item)
