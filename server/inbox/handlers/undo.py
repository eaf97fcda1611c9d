"""Undo: routed by the type of the activity it undoes."""

from __future__ import annotations

from typing import Any

from server.inbox.handlers import follow, moderation, reaction
from server.services import Services


async def on_undo(services: Services, activity: dict[str, Any], item: Any) -> None:
    """Dispatch an Undo on its object's type; an object by reference may be a Follow or a reaction."""
    obj = activity.get("object")
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind in reaction.REACTION_TYPES:
        await reaction.on_undo_reaction(services, activity, obj, item)
    elif kind in ("Lock", "Block", "Delete"):
        await moderation.on_undo_moderation(services, activity, obj, item)
    elif kind == "Follow":
        await follow.on_undo_follow(services, activity, obj, item)
    elif isinstance(obj, str):
        await follow.on_undo_follow(services, activity, obj, item)
        await reaction.on_undo_reaction(services, activity, obj, item)
