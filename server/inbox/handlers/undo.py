"""Undo: routed by the type of the activity it undoes, through a table like the main dispatch's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.inbox.handlers import follow, moderation, reaction
from server.inbox.store import InboxItem
from server.services import Services

UndoHandler = Callable[[Services, dict[str, Any], Any, InboxItem], Awaitable[None]]
"""(services, the Undo, the undone activity (embedded dict or its id), the inbox item)."""

# The undone activity's type -> what undoes it. ``BY_REFERENCE``: the Undo names its object
# only by id, which may be one of our members' Follows or one of their reactions; each
# handler finds its own by that id and does nothing when it is not one of its kind.
BY_REFERENCE = None
UNDO_HANDLERS: dict[str | None, tuple[UndoHandler, ...]] = {
    **{kind: (reaction.on_undo_reaction,) for kind in reaction.REACTION_TYPES},
    "Lock": (moderation.on_undo_moderation,),
    "Block": (moderation.on_undo_moderation,),
    "Delete": (moderation.on_undo_moderation,),
    "Follow": (follow.on_undo_follow,),
    BY_REFERENCE: (follow.on_undo_follow, reaction.on_undo_reaction),
}


def undone_type(obj: Any) -> str | None:
    """The key of ``UNDO_HANDLERS`` for an Undo's object: its type, or ``BY_REFERENCE`` for a bare id."""
    if isinstance(obj, dict):
        kind = obj.get("type")
        return kind if isinstance(kind, str) else ""
    return BY_REFERENCE if isinstance(obj, str) else ""


async def on_undo(services: Services, activity: dict[str, Any], item: InboxItem) -> None:
    """Run the handlers for the type of activity this Undo undoes (none for types we do not keep)."""
    obj = activity.get("object")
    for handler in UNDO_HANDLERS.get(undone_type(obj), ()):
        await handler(services, activity, obj, item)
