"""Undo: routed by the type of the activity it undoes."""

from __future__ import annotations

from typing import Any

from server.inbox.handlers import follow
from server.services import Services


async def on_undo(services: Services, activity: dict[str, Any], item: Any) -> None:
    """Dispatch an Undo on its object's type; an object by reference is tried as a Follow."""
    obj = activity.get("object")
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "Follow" or isinstance(obj, str):
        await follow.on_undo_follow(services, activity, obj, item)
